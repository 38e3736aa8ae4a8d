"""`artctl export` (checkpoint -> ONNX, needs `train`) and `artctl inspect` (a model's card)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from artctl.cli.common import run_command


def export(
    checkpoint: Path = typer.Argument(
        ..., help="Run directory (its latest checkpoint) or a checkpoint directory."
    ),
    out: Path = typer.Option(
        Path("model.onnx"),
        "--out",
        "-o",
        help="Output .onnx file (a NAME.json sidecar is written beside it).",
    ),
    ema: bool = typer.Option(
        True,
        "--ema/--no-ema",
        help="Export the EMA generator (its tail average where the run keeps one) or the raw one.",
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
    palette: str = typer.Option(
        "auto",
        help="Snap every pixel to the nearest colour of a palette (at most 256) inside the graph: auto "
        "(the palette the checkpoint recorded; none if it has none), a palette.json file, or none.",
    ),
    arithmetic: str = typer.Option(
        "auto",
        help="exact: integer arithmetic in the graph, the same pixels on every CPU (artctl-exact-v1; "
        "DCGAN-type fp32 models); float: the generator's own float graph; auto: exact where possible.",
    ),
) -> None:
    """Export a generator to a single ONNX file with uint8 output and a model card (needs `train`)."""

    def body() -> None:
        from artctl_exporter.export import export_checkpoint

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
            palette=palette,
            arithmetic=arithmetic,
            on_step=lambda message: typer.echo(f"export: {message}", err=True),
        )
        p = result.parity
        typer.echo(f"model:   {result.path}  (sha256 {result.sha256})")
        typer.echo(
            f"parity:  max |onnx - torch| = {p['max_abs_diff']:.2e} over {p['seeds']} seeds, batches "
            f"{p['batch_sizes']}; uint8 pixels differing: {p['uint8_pixels_differing_share']:.2e}"
        )
        card = result.card
        sha = f"  (sha256 {card.palette_sha256})" if card.palette else ""
        typer.echo(f"palette: {result.palette_note}{sha}")
        if "palette_snap_mismatches" in p:
            typer.echo(f"snap:    in-graph snap = reference snap, {p['palette_snap_mismatches']} mismatches")
        if "exact_images_checked" in p:
            typer.echo(f"exact:   {card.contracts['arithmetic']}: the same pixels on every CPU")
        for graph in ("mapping", "synthesis"):
            if f"{graph}_file" in result.card.extra:
                typer.echo(f"{graph + ':':10}{result.path.with_name(result.card.extra[graph + '_file'])}")
        from artctl.directions import directions_path

        if directions_path(result.path).is_file():
            typer.echo(
                f"{'directions:':10}{directions_path(result.path)}  (latent directions for the studio)"
            )

    run_command(body)


def inspect(
    model: str = typer.Argument(..., help="An exported .onnx file, or an embedded model (default, emoji)."),
) -> None:
    """Print a model's card (metadata) and signature as JSON."""

    def body() -> None:
        from artctl.cli.drops import resolve_local_model
        from artctl_serving.runtime import load_model

        rt = load_model(resolve_local_model(model, Path.cwd()))
        doc = {"card": rt.card.to_json(), "sha256": rt.sha256, **rt.signature()}
        typer.echo(json.dumps(doc, indent=2))

    run_command(body)


COMMANDS = (export, inspect)
