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
from typing import Any, Literal, TypeVar

import typer

from artctl import __version__
from artctl.modelcard import label_index

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
    except (CliError, ValueError, RuntimeError, OSError, LookupError, ArithmeticError) as exc:
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
    data: str | None = typer.Argument(
        None,
        help="Image folder (recursive; sub-folders = labels), a .zip of images, or synthetic:shapes "
        "[default: the config's data, the resumed run's data, else synthetic:shapes].",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Run directory (checkpoints, samples, metrics) [runs/dcgan, or the resumed run].",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="JSON training config; flags below override it."
    ),
    preset: str | None = typer.Option(
        None,
        help="Start from a preset (dcgan64, emoji64-stylegan, emoji64-stylegan-cond, small-data-dcgan); "
        "--config and flags override it.",
    ),
    architecture: str | None = typer.Option(None, help="Network family: dcgan or stylegan."),
    conditional: bool | None = typer.Option(
        None, "--conditional/--unconditional", help="Condition on labels (sub-folder names)."
    ),
    loss: str | None = typer.Option(None, help="GAN loss: bce (non-saturating), hinge, wgan-gp, lsgan."),
    spectral_norm: bool | None = typer.Option(
        None, "--spectral-norm/--no-spectral-norm", help="Spectral normalisation on the discriminator."
    ),
    r1_gamma: float | None = typer.Option(
        None, help="Lazy R1 penalty weight (default: 0.0002*res^2/batch for stylegan, off for dcgan)."
    ),
    augment: str | None = typer.Option(
        None, help="Augmentation for small data, applied to reals and fakes: none, diffaug, ada."
    ),
    labels_file: Path | None = typer.Option(
        None, help="CSV (path,label) or JSON {path: label} with each image's label, instead of sub-folders."
    ),
    tensorboard: bool | None = typer.Option(
        None, "--tensorboard/--no-tensorboard", help="Also log to RUN/tensorboard (pip install tensorboard)."
    ),
    resolution: int | None = typer.Option(None, help="Image size in pixels (16..256, a power of two)."),
    channels: int | None = typer.Option(None, help="3 (RGB) or 4 (RGBA, transparency kept)."),
    z_dim: int | None = typer.Option(None, help="Latent size."),
    steps: int | None = typer.Option(None, help="Optimisation steps."),
    minutes: float | None = typer.Option(
        None, help="Time budget: stop, with a checkpoint, after N minutes, even before --steps; 0: none."
    ),
    budget_clock: str | None = typer.Option(
        None, help="What --minutes counts: wall (clock time) or cpu (this process's CPU time, all threads)."
    ),
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
    device: str | None = typer.Option(
        None, help="auto (CUDA when available), cpu or cuda; under torchrun each rank takes GPU LOCAL_RANK."
    ),
    precision: str | None = typer.Option(
        None, help="auto (bf16 on GPU), bf16 or fp32: bf16 autocast on GPU; CPU always trains in fp32."
    ),
    resume: Path | None = typer.Option(None, help="Continue from this run or checkpoint."),
) -> None:
    """Train a GAN and write safetensors checkpoints (needs the `train` extra).

    Several GPUs (or CPU processes): `torchrun --nproc-per-node N -m artctl train ...`; --batch is
    then the global batch, split evenly over the N ranks, and only rank 0 writes.
    """

    def body() -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from trainer.config import TrainConfig, load_config
        from trainer.config import preset as named_preset
        from trainer.training_loop import training_loop

        cfg = load_config(config) if config else named_preset(preset) if preset else TrainConfig()
        if config and preset:
            merged_cfg = named_preset(preset).model_dump(exclude_unset=True)
            user = json.loads(config.read_text())
            merged_cfg.update({k: v for k, v in user.items() if k != "network"})
            merged_cfg["network"] = {**merged_cfg.get("network", {}), **user.get("network", {})}
            cfg = TrainConfig.model_validate(merged_cfg)
        run_dir = out
        if resume is not None:
            from trainer.checkpoint import load_checkpoint, resolve_checkpoint

            if config is None and preset is None:
                cfg = load_checkpoint(resume).config
            if run_dir is None:  # RUN/checkpoints/step-N -> RUN
                run_dir = resolve_checkpoint(resume).parent.parent
        run_dir = run_dir or Path("runs/dcgan")
        net_over = {
            k: v
            for k, v in dict(
                architecture=architecture,
                resolution=resolution,
                channels=channels,
                z_dim=z_dim,
                conditional=conditional,
                spectral_norm=spectral_norm,
            ).items()
            if v is not None
        }
        over: dict[str, Any] = {
            k: v
            for k, v in dict(
                steps=steps,
                minutes=minutes,
                budget_clock=budget_clock,
                batch=batch,
                seed=seed,
                mirror=mirror,
                sample_every=sample_every,
                checkpoint_every=checkpoint_every,
                threads=threads,
                device=device,
                precision=precision,
                loss=loss,
                r1_gamma=r1_gamma,
                augment=augment,
                labels_file=str(labels_file) if labels_file else None,
                tensorboard=tensorboard,
            ).items()
            if v is not None
        }
        if lr is not None:
            over.update(lr_g=lr, lr_d=lr)
        if data is not None:
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
            disable=os.environ.get("RANK", "0") != "0",  # torchrun: rank 0 reports
        ) as progress:
            task = progress.add_task("train", total=cfg.steps, info="")

            def on_progress(rec: dict[str, Any]) -> None:
                info = (
                    f"kimg {rec['kimg']:.2f}  {rec['img_per_s']:.0f} img/s  "
                    f"D {rec['loss_D']:.3f}  G {rec['loss_G']:.3f}"
                )
                if "ada_p" in rec:
                    info += f"  ADA p {rec['ada_p']:.3f}"
                progress.update(task, completed=rec["step"], info=info)
                if "stopped" in rec:
                    progress.console.print(f"stopped at step {rec['step']}: {rec['stopped']}")

            last = training_loop(cfg, run_dir, resume=resume, on_progress=on_progress)
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"checkpoint: {last}")
            typer.echo(f"samples:    {run_dir}/samples-*.png   metrics: {run_dir}/metrics.jsonl")

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
    psi: float | None = typer.Option(
        None, help="Default truncation psi in the card, for models with a psi input (default 0.7)."
    ),
    precision: str = typer.Option(
        "fp32", help="fp32, or fp16 (half-precision weights; inputs and pixel rounding stay fp32)."
    ),
    optimize: str = typer.Option(
        "basic", help="Offline ONNX Runtime optimisation: none, basic (portable) or extended (EP-specific)."
    ),
    companions: bool = typer.Option(
        True,
        "--companions/--no-companions",
        help="StyleGAN-type models: also write NAME.mapping.onnx and NAME.synthesis.onnx.",
    ),
) -> None:
    """Export a generator to a single ONNX file with uint8 output and a model card (needs `train`)."""

    def body() -> None:
        from exporter.export import export_checkpoint

        result = export_checkpoint(
            checkpoint,
            out,
            use_ema=ema,
            opset=opset,
            name=name,
            parity_seeds=parity_seeds,
            default_psi=psi,
            companions=companions,
            precision=precision,
            optimize=optimize,
        )
        p = result.parity
        typer.echo(f"model:   {result.path}  (sha256 {result.sha256})")
        typer.echo(
            f"parity:  max |onnx - torch| = {p['max_abs_diff']:.2e} over {p['seeds']} seeds, batches "
            f"{p['batch_sizes']}; uint8 pixels differing: {p['uint8_pixels_differing_share']:.2e}"
        )
        for graph in ("mapping", "synthesis"):
            if f"{graph}_file" in result.card.extra:
                typer.echo(f"{graph + ':':10}{result.path.with_name(result.card.extra[graph + '_file'])}")

    _run(body)


data_app = typer.Typer(help="Make training data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("emoji")
def data_emoji(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one sub-folder per label."),
    size: int = typer.Option(64, help="Image size in pixels (square, RGBA)."),
    labels: str = typer.Option(
        "group", help="group (emoji groups: Smileys & Emotion, Animals & Nature...) or block (Unicode block)."
    ),
    font: Path | None = typer.Option(
        None, help="NotoColorEmoji.ttf (default: the Debian package fonts-noto-color-emoji's)."
    ),
    emoji_test: Path | None = typer.Option(
        None, help="Unicode's emoji-test.txt, naming the groups (default: Debian package unicode-data's)."
    ),
    limit: int = typer.Option(0, help="Stop after N glyphs (0: all)."),
) -> None:
    """Render every single-code-point emoji the Noto Color Emoji font can draw, one folder per label."""

    def body() -> None:
        from trainer.emoji import render_emoji

        if labels not in ("group", "block"):
            raise ValueError(f"--labels must be group or block, got {labels!r}")
        if labels == "block" and emoji_test is not None:
            raise ValueError("--emoji-test names the groups; it has no use with --labels block")
        by: Literal["group", "block"] = "group" if labels == "group" else "block"
        report = render_emoji(out, size=size, font_path=font, limit=limit, labels=by, emoji_test=emoji_test)
        typer.echo(f"{report.count} emoji in {len(report.labels)} labels -> {report.out}")
        for label, count in report.labels.items():
            typer.echo(f"  {label:40} {count}")

    _run(body)


metrics_app = typer.Typer(help="Measure a model's quality.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("fid")
def metrics_fid(
    model: Path = typer.Option(..., "--model", help="An exported .onnx, or a run/checkpoint directory."),
    data: str = typer.Option(..., "--data", help="The real images: a folder, .zip or synthetic:shapes."),
    n: int = typer.Option(
        10000, "--n", help="Images to generate (seeds 0..n-1, labels in the real set's proportions)."
    ),
    psi: float | None = typer.Option(
        None, help="Truncation psi for models with one [the card's default / 1]."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the report as JSON here."),
) -> None:
    """FID and KID (Inception pool3 features) of a model's images against a real set (needs `train`)."""

    def body() -> None:
        from trainer.metrics import generator_source, measure, real_images

        if n < 2:
            raise CliError("--n must be at least 2")
        generate, info = generator_source(model, psi)
        report = measure(generate, real_images(data, info.resolution, info.channels), n)
        doc = {"model": str(model), "data": data, "psi": psi, **report.__dict__}
        typer.echo(
            f"FID {report.fid:.2f}   KID {report.kid * 1000:.2f} ± {report.kid_std * 1000:.2f} (x1e-3)   "
            f"{report.generated} generated vs {report.real} real"
        )
        if out is not None:
            from artctl.fileio import write_json_atomic

            write_json_atomic(out, doc)

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
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with any of these options; flags override it."
    ),
    host: str | None = typer.Option(None, help="Address to bind [127.0.0.1]; 0.0.0.0 for all interfaces."),
    port: int | None = typer.Option(None, help="gRPC port [8001]; 0 picks a free one."),
    metrics_port: int | None = typer.Option(None, help="Prometheus /metrics port [off]."),
    max_batch: int | None = typer.Option(None, help="Most images per inference call [64]."),
    max_delay_ms: float | None = typer.Option(None, help="How long the batcher waits to fill a batch [2]."),
    queue_size: int | None = typer.Option(
        None, help="Images allowed to wait before RESOURCE_EXHAUSTED [4096]."
    ),
    max_seeds_per_request: int | None = typer.Option(None, help="Most seeds in one request [1024]."),
    provider: str | None = typer.Option(
        None, help="ONNX Runtime execution provider: auto, cpu or cuda [auto]."
    ),
    exec_batch: int | None = typer.Option(
        None, help="Canonical batch shape every inference call runs at, padded [0 on CPU, 64 on CUDA]."
    ),
    threads: int | None = typer.Option(None, help="ONNX Runtime intra-op threads [0: its default]."),
    encode_workers: int | None = typer.Option(None, help="PNG encoder workers [0: one per core]."),
    encode_pool: str | None = typer.Option(None, help="PNG encoding in a thread or process pool [thread]."),
    max_message_mb: int | None = typer.Option(None, help="Largest gRPC message in MiB [64]."),
    max_connection_age: float | None = typer.Option(
        None, "--max-connection-age", help="Close connections after N seconds so clients re-balance [off]."
    ),
    watch_interval: float | None = typer.Option(
        None, "--watch-interval", help="Seconds between model-file checks for hot reload; 0 disables [2]."
    ),
    tls_cert: Path | None = typer.Option(None, help="Server certificate (PEM) to serve TLS."),
    tls_key: Path | None = typer.Option(None, help="Server private key (PEM)."),
    tls_client_ca: Path | None = typer.Option(
        None, help="CA bundle (PEM): require client certificates (mTLS)."
    ),
    auth_token_file: Path | None = typer.Option(
        None, help="File with a bearer token required on every call but health checks."
    ),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Serve models over gRPC: artctl.v1.Generator, KServe v2, health, reflection (needs `serve`).

    SIGTERM stops gracefully (health NOT_SERVING, in-flight work finished); SIGHUP reloads models.
    """

    def body() -> None:
        import asyncio

        from serving.config import load_options
        from serving.server import serve_forever

        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
        )
        overrides = {
            "host": host,
            "port": port,
            "metrics_port": metrics_port,
            "max_batch": max_batch,
            "max_delay_ms": max_delay_ms,
            "queue_size": queue_size,
            "max_seeds_per_request": max_seeds_per_request,
            "provider": provider,
            "exec_batch": exec_batch,
            "threads": threads,
            "encode_workers": encode_workers,
            "encode_pool": encode_pool,
            "max_message_mb": max_message_mb,
            "max_connection_age_s": max_connection_age,
            "watch_interval_s": watch_interval,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "tls_client_ca": tls_client_ca,
            "auth_token_file": auth_token_file,
            "models": list(models or []),
        }
        asyncio.run(serve_forever(load_options(config, overrides)))

    _run(body)


def _progress(label: str, total: int) -> Any:
    """A progress bar with tokens/s and ETA; returns (context manager, callback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    task = progress.add_task(label, total=total, rate="")
    started = time.perf_counter()

    def update(done: int, total_now: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress.update(task, completed=done, total=total_now, rate=f"{rate:,.0f} tokens/s")

    return progress, update


@app.command()
def mint(
    collection: Path = typer.Argument(..., help="Collection config (TOML)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the drop."),
    server: list[str] = typer.Option(None, "--server", help="HOST:PORT of a server; repeat for round robin."),
    local: bool = typer.Option(
        False, "--local", help="Render in-process with ONNX Runtime; `model` is an .onnx path."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Override the config's model (name or .onnx path)."
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="Render only slice i of n (0-based, e.g. 0/4); join with `artctl merge`."
    ),
    fmt: str = typer.Option(
        "erc721", "--format", help="Token metadata: erc721 (OpenSea) or metaplex (Solana)."
    ),
) -> None:
    """Render a collection: images, metadata, manifest, provenance, rarity, contact sheet.

    Re-running with the same config resumes: finished tokens are verified on disk and skipped.
    """

    def body() -> None:
        from artctl.collection import load_collection
        from artctl.metadata import check_format
        from artctl.mint import Shard
        from artctl.mint import mint as run_mint
        from artctl.renderers import open_renderer

        cfg = load_collection(collection)
        check_format(cfg, fmt)
        part = Shard.parse(shard) if shard else None
        renderer = open_renderer(model or cfg.model, server or [], local, collection.parent)
        total = len(part.ids(cfg)) if part else cfg.size
        progress, update = _progress("mint", total)
        with progress:
            result = run_mint(cfg, out, renderer, fmt=fmt, shard=part, on_progress=update)
        for note in result.notes:
            typer.echo(f"note: {note}")
        kept = result.tokens - result.rendered
        what = f"shard {part.index}/{part.count}: " if part else ""
        typer.echo(f"{what}minted {result.tokens} tokens into {result.out_dir} ({kept} were done, verified)")
        typer.echo(f"  images:      {result.out_dir}/images/")
        typer.echo(f"  metadata:    {result.out_dir}/metadata/  ({fmt})")
        typer.echo(f"  manifest:    {result.manifest}")
        if part:
            typer.echo("  join the shards with: artctl merge OUT SHARD_DIR...")
            return
        typer.echo(f"  provenance:  {result.provenance}")
        typer.echo(f"  rarity:      {result.out_dir}/rarity.json")
        if result.contact_sheet:
            typer.echo(f"  open {result.contact_sheet} to see the drop at a glance")

    _run(body)


@app.command()
def merge(
    out: Path = typer.Argument(..., help="Folder for the joined drop (new, or a merge to resume)."),
    shards: list[Path] = typer.Argument(..., help="The shard folders written by `artctl mint --shard i/n`."),
) -> None:
    """Join minted shards into one drop, identical to a single `artctl mint` run."""

    def body() -> None:
        from artctl.merge import merge as run_merge

        result = run_merge(out, shards)
        typer.echo(f"merged {len(shards)} shards, {result.tokens} tokens, into {result.out_dir}")
        typer.echo(f"  provenance:  {result.provenance}")

    _run(body)


@app.command()
def verify(
    drop: Path = typer.Argument(..., help="A drop folder written by `artctl mint` (or `merge`)."),
    server: list[str] = typer.Option(None, "--server", help="HOST:PORT of a server; repeat for round robin."),
    local: bool = typer.Option(False, "--local", help="Re-render in-process with ONNX Runtime."),
    model: str | None = typer.Option(
        None, "--model", help="Model name or .onnx path (default: the one in the drop's config)."
    ),
) -> None:
    """Re-render every token; check pixels, files, CIDs, metadata, provenance. Exit 1 on any mismatch."""

    def body() -> None:
        from artctl.renderers import open_renderer
        from artctl.verify import load_manifest
        from artctl.verify import verify as run_verify

        _, cfg = load_manifest(drop)
        renderer = open_renderer(model or cfg.model, server or [], local, None)
        progress, update = _progress("verify", cfg.size)
        with progress:
            report = run_verify(drop, renderer, on_progress=update)
        for problem in report.problems:
            typer.echo(f"MISMATCH {problem}")
        if report.problems:
            raise CliError(f"{drop}: {len(report.problems)} mismatches in {report.tokens} tokens")
        typer.echo(f"verified {report.tokens} tokens in {drop}: pixels, files, CIDs, metadata, provenance")

    _run(body)


def _seed_list(text: str, what: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]; each a valid seed (0 <= seed < 2**64)."""
    from artctl.seeds import as_seed_array

    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CliError(f"{what}: cannot read {text!r} as comma-separated seeds") from None
    if not seeds:
        raise CliError(f"{what}: give at least one seed")
    return [int(s) for s in as_seed_array(seeds)]


def _open_styles(model: Path) -> Any:
    from serving.runtime import load_model
    from serving.styles import load_style_graphs

    return load_style_graphs(load_model(model))


@app.command()
def mix(
    model: Path = typer.Option(..., "--model", help="A StyleGAN-type .onnx exported with its companions."),
    content: str = typer.Option(..., "--content", help="Content seed(s), comma-separated."),
    style: str = typer.Option(..., "--style", help="Style seed(s), comma-separated."),
    layers: str = typer.Option(
        "coarse", "--layers", help="Layers taking the style seed's w: coarse, middle, fine, i-j or i."
    ),
    grid: bool = typer.Option(
        False, "--grid", help="Content seeds x style seeds, plain renders on the edges (StyleGAN paper)."
    ),
    psi: float | None = typer.Option(None, help="Truncation psi in [0, 2] [the card's default]."),
    label: str | None = typer.Option(None, help="Label name or index (conditional models) [0]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output PNG."),
) -> None:
    """Style mixing: the content seed with the style seed's w on the chosen layers (needs `serve`)."""

    def body() -> None:
        import numpy as np

        from artctl.fileio import write_bytes_atomic
        from artctl.imaging import encode_png
        from artctl.seeds import pixel_sha256
        from artctl.stylemix import grid_pairs, mixing_grid, parse_layers
        from serving.creative import mixed_ws
        from serving.validation import check_labels, check_psi

        if out.suffix.lower() != ".png":
            raise CliError(f"{out}: --out must be a .png file")
        content_seeds = _seed_list(content, "--content")
        style_seeds = _seed_list(style, "--style")
        if not grid and (len(content_seeds) != 1 or len(style_seeds) != 1):
            raise CliError("give one --content and one --style seed, or --grid for several")
        graphs = _open_styles(model)
        card = graphs.runtime.card
        span = parse_layers(layers, graphs.num_ws)
        c, s = grid_pairs(content_seeds, style_seeds)
        n = len(c)
        psi_arr = check_psi(card, None if psi is None else [psi], n)
        lab = label_index(label, card.label_names)
        labels = check_labels(card, [] if lab is None else [lab], n)
        ws = mixed_ws(
            graphs, np.array(c, dtype=np.uint64), np.array(s, dtype=np.uint64), span, psi_arr, labels
        )
        images = graphs.synthesize(ws)
        if grid:

            def plain(seeds: list[int]) -> Any:
                k = len(seeds)
                p = None if psi_arr is None else psi_arr[:1].repeat(k)
                lbl = None if labels is None else labels[:1].repeat(k)
                return graphs.synthesize(graphs.map_seeds(np.array(seeds, dtype=np.uint64), p, lbl))

            picture = mixing_grid(plain(content_seeds), plain(style_seeds), images)
        else:
            picture = images[0]
        write_bytes_atomic(out, encode_png(picture))
        what = f"{len(content_seeds)}x{len(style_seeds)} grid" if grid else f"{c[0]} + style {s[0]}"
        typer.echo(f"mixed {what}, layers {span} of {graphs.num_ws} -> {out}")
        if not grid:
            typer.echo(f"pixel_sha256 {pixel_sha256(picture)}")

    _run(body)


@app.command()
def interpolate(
    model: Path = typer.Option(..., "--model", help="A StyleGAN-type .onnx exported with its companions."),
    seeds: str = typer.Option(..., "--seeds", help="Keyframe seeds, comma-separated (at least two)."),
    frames: int = typer.Option(60, "--frames", help="Total frames; every seed is one of them."),
    space: str = typer.Option("z", "--space", help="z (slerp) or w (lerp)."),
    loop: bool = typer.Option(False, "--loop", help="Walk back to the first seed (seamless loop)."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the animation."),
    psi: float | None = typer.Option(None, help="Truncation psi in [0, 2] [the card's default]."),
    label: str | None = typer.Option(None, help="Label name or index (conditional models) [0]."),
    out: Path = typer.Option(..., "--out", "-o", help="walk.gif or walk.webp (lossless)."),
) -> None:
    """A latent walk through seeds as an animation; frames are a pure function of the seeds."""

    def body() -> None:
        from artctl.animation import animation_format, write_animation
        from artctl.latentwalk import SPACES
        from serving.creative import walk_ws
        from serving.validation import check_labels, check_psi

        animation_format(out)
        if space not in SPACES:
            raise CliError(f"--space must be z or w, got {space!r}")
        keys = _seed_list(seeds, "--seeds")
        graphs = _open_styles(model)
        card = graphs.runtime.card
        p = check_psi(card, None if psi is None else [psi], 1)
        lab = label_index(label, card.label_names)
        labels = check_labels(card, [] if lab is None else [lab], 1)
        started = time.perf_counter()
        plan = walk_ws(
            graphs,
            keys,
            frames,
            space,
            loop,
            None if p is None else float(p[0]),
            None if labels is None else int(labels[0]),
        )
        images = graphs.synthesize(plan.ws)
        seconds = time.perf_counter() - started
        write_animation(out, images, fps)
        typer.echo(
            f"{frames} frames through {len(keys)} seeds in {space} "
            f"({frames / seconds:,.0f} frames/s) -> {out}"
        )

    _run(body)


@app.command()
def restore(
    image: Path = typer.Argument(..., help="The damaged image (PNG), at the model's resolution."),
    mask: Path = typer.Option(
        ...,
        "--mask",
        help="PNG of the same size: white (>= 128) marks pixels to repair, black the ones to keep.",
    ),
    model: Path = typer.Option(..., "--model", help="A StyleGAN-type run or checkpoint directory."),
    steps: int = typer.Option(200, "--steps", help="Optimisation steps."),
    space: str = typer.Option("w+", "--space", help="w (one w for all layers) or w+ (one per layer)."),
    label: str | None = typer.Option(None, help="Label name or index (conditional models) [mean of all]."),
    perceptual: float = typer.Option(
        0.1, "--perceptual", help="Weight of the Inception-feature term (0 turns it off, faster)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
) -> None:
    """Repair the masked region: project the kept pixels into w/w+ and fill from the generator (`train`)."""

    def body() -> None:
        from trainer.restore import RestoreOptions, restore_files

        opts = RestoreOptions(steps=steps, space=space, perceptual_weight=perceptual)
        result = restore_files(image, mask, model, out, opts, label=label)
        typer.echo(
            f"restored {result.masked_pixels} masked pixels in {steps} steps "
            f"(kept-pixel loss {result.initial_loss:.4f} -> {result.final_loss:.4f})"
        )
        for key, path in result.files.items():
            typer.echo(f"  {key + ':':10} {path}")

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
    """The whole journey: serve the embedded default model (or train and export a small one when the
    install has none), then mint a drop through the server."""

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
            collection.write_text(_demo_collection(model, tokens))
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


def _demo_collection(model: Path, tokens: int) -> str:
    """A collection config for the demo: a conditioning trait over the model's own labels, if any."""
    from serving.runtime import load_model

    card = load_model(model).card
    lines = [
        'name = "artctl demo"',
        'symbol = "DEMO"',
        f'description = "Artworks by the model {card.name}, each re-derivable from its seed."',
        f"size = {tokens}",
        'salt = "demo-salt"',
        'model = "default"',
    ]
    if card.has_label and card.label_names:
        names = card.label_names
        pretty = [n.replace("-", " ").title() for n in names]
        lines += [
            "",
            "[[traits]]",
            'name = "Family"',
            'kind = "conditioning"',
            f"values = {json.dumps(pretty)}",
            f"weights = {json.dumps([1] * len(names))}",
            f"labels = {json.dumps(names)}",
        ]
    lines += [
        "",
        "[[traits]]",
        'name = "Brightness"',
        'kind = "derived"',
        'source = "brightness"',
        'values = ["Dark", "Dim", "Bright", "Radiant"]',
        "thresholds = [64, 128, 192]",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
