"""The `artctl` command line. Heavy modules (torch, onnxruntime) are imported inside each command,
so `artctl --help`, the client and mint stay light."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from artctl import __version__

app = typer.Typer(
    name="artctl",
    help="Train a GAN on your artwork, export it to ONNX, serve it over gRPC and mint reproducible drops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")


class CliError(Exception):
    """An error to print as one line (exit code 1)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"artctl: error: {message}", err=True)
    return typer.Exit(code=1)


def _run(fn: Callable[[], T]) -> T:
    """Run a command body; expected failures become one readable line and exit code 1."""
    import grpc

    try:
        return fn()
    except (CliError, ValueError, RuntimeError, OSError, LookupError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail(text) from None
    except grpc.RpcError as exc:
        raise _fail(f"server said {exc.code().name}: {exc.details()}") from None  # type: ignore[attr-defined]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"artctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """artctl: train -> export -> serve -> mint."""


@app.command()
def train(
    data: str = typer.Argument(
        "synthetic:shapes", help="Image folder (recursive; sub-folders = labels) or synthetic:shapes."
    ),
    out: Path = typer.Option(
        Path("runs/dcgan"), "--out", "-o", help="Run directory (checkpoints, samples, metrics)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="JSON training config; flags below override it."
    ),
    architecture: str | None = typer.Option(None, help="Network family: dcgan."),
    resolution: int | None = typer.Option(None, help="Image size in pixels (16..256, a power of two)."),
    channels: int | None = typer.Option(None, help="3 (RGB) or 4 (RGBA, transparency kept)."),
    z_dim: int | None = typer.Option(None, help="Latent size."),
    steps: int | None = typer.Option(None, help="Optimisation steps."),
    batch: int | None = typer.Option(None, help="Images per step."),
    lr: float | None = typer.Option(None, help="Learning rate of G and D."),
    seed: int | None = typer.Option(None, help="Training RNG seed."),
    mirror: bool | None = typer.Option(
        None, "--mirror/--no-mirror", help="Random horizontal flips of reals."
    ),
    sample_every: int | None = typer.Option(None, help="Write a sample grid every N steps."),
    checkpoint_every: int | None = typer.Option(
        None, help="Write a checkpoint every N steps (0: at the end)."
    ),
    threads: int | None = typer.Option(None, help="Torch CPU threads (0: torch's default)."),
    resume: Path | None = typer.Option(None, help="Continue from this run or checkpoint."),
) -> None:
    """Train a GAN and write safetensors checkpoints (needs the `train` extra)."""

    def body() -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from trainer.config import TrainConfig, load_config
        from trainer.training_loop import training_loop

        cfg = load_config(config) if config else TrainConfig()
        if resume is not None and config is None:
            from trainer.checkpoint import load_checkpoint

            cfg = load_checkpoint(resume).config
        net_over = {
            k: v
            for k, v in dict(
                architecture=architecture, resolution=resolution, channels=channels, z_dim=z_dim
            ).items()
            if v is not None
        }
        over: dict[str, Any] = {
            k: v
            for k, v in dict(
                steps=steps,
                batch=batch,
                seed=seed,
                mirror=mirror,
                sample_every=sample_every,
                checkpoint_every=checkpoint_every,
                threads=threads,
            ).items()
            if v is not None
        }
        if lr is not None:
            over.update(lr_g=lr, lr_d=lr)
        if data != "synthetic:shapes" or config is None:
            over["data"] = data
        merged = cfg.model_dump()
        merged.update(over)
        merged["network"].update(net_over)
        cfg = TrainConfig.model_validate(merged)

        with Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("train", total=cfg.steps, info="")

            def on_progress(rec: dict[str, Any]) -> None:
                info = (
                    f"kimg {rec['kimg']:.2f}  {rec['img_per_s']:.0f} img/s  "
                    f"D {rec['loss_D']:.3f}  G {rec['loss_G']:.3f}"
                )
                progress.update(task, completed=rec["step"], info=info)

            last = training_loop(cfg, out, resume=resume, on_progress=on_progress)
        typer.echo(f"checkpoint: {last}")
        typer.echo(f"samples:    {out}/samples-*.png   metrics: {out}/metrics.jsonl")

    _run(body)


@app.command()
def export(
    checkpoint: Path = typer.Argument(
        ..., help="Run directory (its latest checkpoint) or a checkpoint directory."
    ),
    out: Path = typer.Option(
        Path("model.onnx"),
        "--out",
        "-o",
        help="Output .onnx file (a model.json sidecar is written beside it).",
    ),
    ema: bool = typer.Option(
        True, "--ema/--no-ema", help="Export the EMA generator (recommended) or the raw one."
    ),
    opset: int = typer.Option(17, help="ONNX opset (13..20)."),
    name: str | None = typer.Option(None, help="Model name in the card (default: the file's stem)."),
    parity_seeds: int = typer.Option(256, help="Seeds in the ONNX-vs-PyTorch parity check."),
) -> None:
    """Export a generator to a single ONNX file with uint8 output and a model card (needs `train`)."""

    def body() -> None:
        from exporter.export import export_checkpoint

        result = export_checkpoint(
            checkpoint, out, use_ema=ema, opset=opset, name=name, parity_seeds=parity_seeds
        )
        p = result.parity
        typer.echo(f"model:   {result.path}  (sha256 {result.sha256})")
        typer.echo(
            f"parity:  max |onnx - torch| = {p['max_abs_diff']:.2e} over {p['seeds']} seeds, batches "
            f"{p['batch_sizes']}; uint8 pixels differing: {p['uint8_pixels_differing_share']:.2e}"
        )

    _run(body)


@app.command()
def inspect(model: Path = typer.Argument(..., help="An exported .onnx file.")) -> None:
    """Print a model's card (metadata) and signature as JSON."""

    def body() -> None:
        from serving.runtime import load_model

        rt = load_model(model)
        doc = {
            "card": rt.card.to_json(),
            "sha256": rt.sha256,
            "inputs": {i.name: [i.type, i.shape] for i in rt.session.get_inputs()},
            "outputs": {o.name: [o.type, o.shape] for o in rt.session.get_outputs()},
        }
        typer.echo(json.dumps(doc, indent=2))

    _run(body)


@app.command()
def serve(
    models: list[Path] = typer.Argument(
        None, help="Model files or folders of .onnx files (default: the embedded model)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 for all interfaces)."),
    port: int = typer.Option(8001, help="gRPC port (0 picks a free one)."),
    metrics_port: int | None = typer.Option(None, help="Prometheus /metrics port (off when not given)."),
    max_batch: int = typer.Option(64, help="Most images per inference call."),
    max_delay_ms: float = typer.Option(2.0, help="How long the batcher waits to fill a batch."),
    queue_size: int = typer.Option(
        4096, help="Images allowed to wait; beyond it requests get RESOURCE_EXHAUSTED."
    ),
    max_seeds_per_request: int = typer.Option(1024, help="Most seeds in one request."),
    provider: str = typer.Option("cpu", help="ONNX Runtime execution provider: cpu or cuda."),
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads (0: its default)."),
    encode_workers: int = typer.Option(0, help="PNG encoder threads (0: one per core)."),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Serve models over gRPC: artctl.v1.Generator, KServe v2, health and reflection (needs `serve`)."""

    def body() -> None:
        import asyncio

        from serving.server import ServerOptions, serve_forever

        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
        )
        opts = ServerOptions(
            host=host,
            port=port,
            metrics_port=metrics_port,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            queue_size=queue_size,
            max_seeds_per_request=max_seeds_per_request,
            threads=threads,
            provider=provider,
            encode_workers=encode_workers,
            models=list(models or []),
        )
        asyncio.run(serve_forever(opts))

    _run(body)


@app.command()
def mint(
    collection: Path = typer.Argument(..., help="Collection config (TOML)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the drop."),
    server: list[str] = typer.Option(None, "--server", help="HOST:PORT of a server; repeat for round robin."),
    local: bool = typer.Option(
        False, "--local", help="Render in-process with ONNX Runtime; `model` is an .onnx path."
    ),
) -> None:
    """Render a collection: images, ERC-721 metadata, manifest, provenance, contact sheet."""

    def body() -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from artctl.collection import load_collection
        from artctl.mint import LocalRenderer, ServerRenderer
        from artctl.mint import mint as run_mint

        cfg = load_collection(collection)
        if local == bool(server):
            raise CliError("choose where to render: --server HOST:PORT (one or more) or --local")
        renderer: Any
        if local:
            path = Path(cfg.model)
            if not path.is_absolute():
                path = (collection.parent / path) if (collection.parent / path).exists() else path
            renderer = LocalRenderer(path)
        else:
            from artctl.client import GeneratorClient

            renderer = ServerRenderer(GeneratorClient(server), cfg.model)
        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]mint"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        ) as progress:
            task = progress.add_task("mint", total=cfg.size, rate="")

            def on_token(_: int) -> None:
                done = progress.tasks[0].completed + 1
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:.0f} tokens/s")

            result = run_mint(cfg, out, renderer, on_token=on_token)
        typer.echo(f"minted {result.tokens} tokens into {result.out_dir}")
        typer.echo(f"  images:      {result.out_dir}/images/")
        typer.echo(f"  metadata:    {result.out_dir}/metadata/")
        typer.echo(f"  manifest:    {result.manifest}")
        typer.echo(f"  provenance:  {result.provenance}")
        if result.contact_sheet:
            typer.echo(f"  open {result.contact_sheet} to see the drop at a glance")

    _run(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_server(target: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server's health service says SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise CliError(f"server exited with code {proc.returncode} before it was ready")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise CliError(f"server at {target} was not ready within {timeout:.0f} s")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "--out", "-o", help="Where the run, model and drop go."),
    steps: int = typer.Option(600, help="Training steps for the demo model."),
    tokens: int = typer.Option(16, help="Tokens to mint."),
) -> None:
    """The whole journey: train a small model, export it, serve it, mint a drop through the server."""

    def body() -> None:
        from serving.server import EMBEDDED_DEFAULT

        out.mkdir(parents=True, exist_ok=True)
        model = out / "model.onnx"
        exe = [sys.executable, "-m", "artctl"]
        if EMBEDDED_DEFAULT.is_file():
            typer.echo(f"[1/4] using the embedded default model {EMBEDDED_DEFAULT}")
            model = EMBEDDED_DEFAULT
        else:
            typer.echo(
                f"[1/4] no trained default model ships yet: training a small DCGAN on synthetic shapes "
                f"({steps} steps, about a minute on 2 cores)"
            )
            subprocess.run(
                [
                    *exe,
                    "train",
                    "synthetic:shapes",
                    "--out",
                    str(out / "run"),
                    "--steps",
                    str(steps),
                    "--batch",
                    "64",
                    "--resolution",
                    "32",
                    "--channels",
                    "4",
                    "--sample-every",
                    str(steps),
                ],
                check=True,
            )
            typer.echo("[2/4] exporting the generator to ONNX (parity-checked against PyTorch)")
            subprocess.run(
                [*exe, "export", str(out / "run"), "--out", str(model), "--name", "demo"], check=True
            )
        port = _free_port()
        target = f"127.0.0.1:{port}"
        typer.echo(f"[3/4] serving {model.name} on {target}")
        proc = subprocess.Popen([*exe, "serve", str(model), "--port", str(port), "--log-level", "WARNING"])
        try:
            wait_for_server(target, proc=proc)
            collection = out / "collection.toml"
            collection.write_text(
                f'name = "artctl demo"\nsymbol = "DEMO"\ndescription = "Shapes dreamed by a small GAN."\n'
                f'size = {tokens}\nsalt = "demo-salt"\nmodel = "default"\n'
            )
            typer.echo(f"[4/4] minting {tokens} tokens through the server")
            subprocess.run(
                [*exe, "mint", str(collection), "--out", str(out / "drop"), "--server", target], check=True
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        drop = out / "drop"
        typer.echo("")
        typer.echo(f"Done. The drop is in {drop}/:")
        typer.echo(f"  {drop}/images/*.png      the artworks")
        typer.echo(f"  {drop}/metadata/*.json   ERC-721 metadata per token")
        typer.echo(f"  {drop}/manifest.json     seeds, pixel and file hashes, render profile")
        typer.echo(f"  {drop}/provenance.txt    the provenance hash")
        typer.echo(f"Open {drop}/contact-sheet.png to see it (any image viewer or a browser).")

    try:
        _run(body)
    except subprocess.CalledProcessError as exc:
        raise _fail(f"step failed: {' '.join(map(str, exc.cmd[2:4]))} exited with {exc.returncode}") from None


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
