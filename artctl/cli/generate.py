"""`artctl generate`: a few seeds to PNG files, in this process, exactly as the server renders them.

StyleGAN2-ADA's generate.py habit (`--seeds 0-15 --trunc 0.7 --class 1 --outdir out`) without a
collection config or a server: one PNG per seed (seedNNNN.png), a captioned grid of them, and each
image's pixel hash, which a server or a drop gives for the same model, seed, psi and label.
"""

from __future__ import annotations

from pathlib import Path

import typer

from artctl.cli.common import CliError, echo_json, progress_bar, run_command, seed_list

CHUNK = 64  # images rendered per ONNX Runtime call


def generate(
    seeds: str = typer.Option(..., "--seeds", help="Seeds: comma-separated, ranges as 0-15."),
    model: str = typer.Option(
        "default",
        "--model",
        help="An .onnx file, or an embedded model: default (the Nouns pixel art) or emoji.",
    ),
    psi: float | None = typer.Option(None, help="Truncation psi in [0, 2] [the card's default]."),
    label: str | None = typer.Option(None, help="Label name or index (conditional models) [0]."),
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Output folder."),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="Also write grid.png, each tile captioned."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (files and hashes)."),
) -> None:
    """Render seeds with a model to seedNNNN.png files (needs `serve`; no server, no config)."""

    def body() -> None:
        import numpy as np

        from artctl.cli.drops import resolve_local_model
        from artctl.fileio import write_bytes_atomic
        from artctl.imaging import contact_sheet
        from artctl.modelcard import label_index
        from artctl_serving.local import LocalRenderer

        chosen = seed_list(seeds, "--seeds")
        renderer = LocalRenderer(resolve_local_model(model, Path.cwd()))
        card = renderer.runtime.card
        index = label_index(label, card.label_names)
        if out.exists() and not out.is_dir():
            raise CliError(f"{out} is a file; --out takes a folder")
        out.mkdir(parents=True, exist_ok=True)
        files: list[dict[str, object]] = []
        images: list[np.ndarray] = []
        progress, update = progress_bar("generate", len(chosen), unit="images", enabled=not as_json)
        with progress:
            for start in range(0, len(chosen), CHUNK):
                part = chosen[start : start + CHUNK]
                labels = None if index is None else [index] * len(part)
                for art in renderer.render(part, psi, labels):
                    path = out / f"seed{art.seed:04d}.png"
                    write_bytes_atomic(path, art.png)
                    files.append({"seed": art.seed, "file": str(path), "pixel_sha256": art.pixel_sha256})
                    if grid and len(images) < 100 and art.pixels is not None:
                        images.append(art.pixels)
                update(min(start + CHUNK, len(chosen)), len(chosen))
        grid_path = None
        if grid:
            import io

            buf = io.BytesIO()
            contact_sheet(np.stack(images), chosen[: len(images)], cols=8).save(buf, format="PNG")
            grid_path = out / "grid.png"
            write_bytes_atomic(grid_path, buf.getvalue())
        shown_psi = card.default_psi if psi is None else psi
        if as_json:
            echo_json(
                {
                    "model": renderer.runtime.name,
                    "psi": shown_psi if card.has_psi else None,
                    "label": index,
                    "images": files,
                    "grid": grid_path,
                }
            )
            return
        extra = f", psi {shown_psi:g}" if card.has_psi else ""
        extra += (
            f", label {card.label_names[index] if card.label_names else index}" if index is not None else ""
        )
        typer.echo(f"{len(files)} images of {renderer.runtime.name}{extra} -> {out}/seedNNNN.png")
        if grid_path:
            typer.echo(f"  grid: {grid_path}")

    run_command(body, as_json=as_json)


COMMANDS = (generate,)
