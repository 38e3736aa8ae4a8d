"""`artctl mix`, `interpolate` (artctl_serving.creative, in this process) and `restore`
(artctl_trainer.restore)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from artctl.capabilities import Space
from artctl.cli.common import CliError, progress_bar, run_command, seed_list

PSI_HELP = "Truncation psi in [0, 2] [the card's default]."
LABEL_HELP = "Label name or index (conditional models) [0]."
STYLE_MODEL_HELP = (
    "A StyleGAN-type .onnx exported with its companions, or emoji (the embedded one; the Nouns "
    "default has no w space)."
)


def mix(
    model: str = typer.Option(..., "--model", help=STYLE_MODEL_HELP),
    content: str = typer.Option(..., "--content", help="Content seed(s), comma-separated."),
    style: str = typer.Option(..., "--style", help="Style seed(s), comma-separated."),
    layers: str = typer.Option(
        "coarse", "--layers", help="Layers taking the style seed's w: coarse, middle, fine, i-j or i."
    ),
    grid: bool = typer.Option(
        False, "--grid", help="Content seeds x style seeds, plain renders on the edges (StyleGAN paper)."
    ),
    psi: float | None = typer.Option(None, help=PSI_HELP),
    label: str | None = typer.Option(None, help=LABEL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output PNG."),
) -> None:
    """Style mixing: the content seed with the style seed's w on the chosen layers (needs `serve`)."""

    def body() -> None:
        from artctl.cli.drops import resolve_local_model
        from artctl.fileio import write_bytes_atomic
        from artctl.imaging import encode_png
        from artctl.seeds import pixel_sha256
        from artctl_serving.creative import mix_picture
        from artctl_serving.styles import open_style_graphs

        if out.suffix.lower() != ".png":
            raise CliError(f"{out}: --out must be a .png file")
        content_seeds = seed_list(content, "--content")
        style_seeds = seed_list(style, "--style")
        if not grid and (len(content_seeds) != 1 or len(style_seeds) != 1):
            raise CliError("give one --content and one --style seed, or --grid for several")
        graphs = open_style_graphs(resolve_local_model(model, Path.cwd()))
        picture, span = mix_picture(graphs, content_seeds, style_seeds, layers, psi, label, grid)
        write_bytes_atomic(out, encode_png(picture))
        if grid:
            what = f"{len(content_seeds)}x{len(style_seeds)} grid"
        else:
            what = f"{content_seeds[0]} + style {style_seeds[0]}"
        typer.echo(f"mixed {what}, layers {span} of {graphs.num_ws} -> {out}")
        if not grid:
            typer.echo(f"pixel_sha256 {pixel_sha256(picture)}")

    run_command(body)


def interpolate(
    model: str = typer.Option(
        ...,
        "--model",
        help="An exported .onnx or an embedded model (default, emoji); w walks need a StyleGAN-type "
        "one with its companions (emoji).",
    ),
    seeds: str = typer.Option(..., "--seeds", help="Keyframe seeds, comma-separated (at least two)."),
    frames: int = typer.Option(60, "--frames", help="Total frames; every seed is one of them."),
    space: str = typer.Option("z", "--space", help="z (slerp; any model) or w (lerp; StyleGAN-type)."),
    loop: bool = typer.Option(False, "--loop", help="Walk back to the first seed (seamless loop)."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the animation."),
    psi: float | None = typer.Option(None, help=PSI_HELP),
    label: str | None = typer.Option(None, help=LABEL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="walk.gif or walk.webp (lossless)."),
) -> None:
    """A latent walk through seeds as an animation; frames are a pure function of the seeds."""

    def body() -> None:
        from artctl.animation import animation_format, write_animation
        from artctl.cli.drops import resolve_local_model
        from artctl.latentwalk import SPACES
        from artctl_serving.creative import walk_frames, z_walk_frames
        from artctl_serving.errors import NoStyleGraphsError
        from artctl_serving.runtime import Engine, load_model
        from artctl_serving.styles import open_style_graphs

        animation_format(out)
        if space not in SPACES:
            raise CliError(f"--space must be z or w, got {space!r}")
        keys = seed_list(seeds, "--seeds")
        path = resolve_local_model(model, Path.cwd())
        try:
            graphs = open_style_graphs(path)
        except NoStyleGraphsError:
            if space == "w":
                raise
            graphs = None  # a DCGAN (or a model exported without companions): walk z in its own graph
        started = time.perf_counter()
        progress, update = progress_bar("interpolate", frames, unit="frames")
        with progress:
            if graphs is None:
                runtime = load_model(path, name=path.stem, engine=Engine.choose("cpu"))
                images = z_walk_frames(runtime, keys, frames, loop, psi, label, on_progress=update)
            else:
                walk_space: Space = "w" if space == "w" else "z"
                images = walk_frames(graphs, keys, frames, walk_space, loop, psi, label, on_progress=update)
        seconds = time.perf_counter() - started
        write_animation(out, images, fps)
        typer.echo(
            f"{frames} frames through {len(keys)} seeds in {space} "
            f"({frames / seconds:,.0f} frames/s) -> {out}"
        )

    run_command(body)


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
        from artctl_trainer.restore import RestoreOptions, restore_files

        opts = RestoreOptions(steps=steps, space=space, perceptual_weight=perceptual)
        progress, update = progress_bar("restore", steps, unit="steps")
        with progress:
            result = restore_files(image, mask, model, out, opts, label=label, on_progress=update)
        typer.echo(
            f"restored {result.masked_pixels} masked pixels in {steps} steps "
            f"(kept-pixel loss {result.initial_loss:.4f} -> {result.final_loss:.4f})"
        )
        for key, path in result.files.items():
            typer.echo(f"  {key + ':':10} {path}")

    run_command(body)


COMMANDS = (mix, interpolate, restore)
