"""`artctl metrics`: a model's quality against a real image set (needs `train`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

from artctl.capabilities import Capabilities
from artctl.cli.common import TYPER_SETTINGS, CliError, LazyProgress, echo_json, run_command

metrics_app = typer.Typer(**TYPER_SETTINGS, help="Measure a model's quality.", no_args_is_help=True)


def generator_source(model: Path, psi: float | None = None) -> tuple[Any, Capabilities]:
    """generate(start, count, labels) for an exported .onnx (ONNX Runtime) or a checkpoint (torch).

    Both follow the seed contract, so a model and its export measure the same images (up to the
    exporter's parity bound). Returns the function and the model's capabilities.
    """
    model = Path(model)
    if model.suffix != ".onnx":
        from artctl_trainer.metrics import checkpoint_source

        return checkpoint_source(model, psi)
    from artctl_serving.runtime import load_model
    from artctl_trainer.metrics import label_indices

    runtime = load_model(model)
    caps = runtime.caps

    def from_onnx(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
        seeds = np.arange(start, start + count, dtype=np.uint64)
        value = caps.default_psi if psi is None else psi
        psi_arr = np.full(count, value, np.float32) if caps.psi else None
        return runtime.render(seeds, psi_arr, label_indices(labels, list(caps.label_names), seeds.tolist()))

    return from_onnx, caps


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
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """FID, KID, precision/recall, density/coverage and memorisation (Inception pool3 features) of a
    model's images against a real set (needs `train`)."""

    def body() -> None:
        from artctl_trainer.metrics import measure, real_images

        if n < 2:
            raise CliError("--n must be at least 2")
        generate, info = generator_source(model, psi)
        real = real_images(data, info.resolution, info.channels)
        pixel_art = PixelArtJudge.of(data, real)
        if pixel_art is not None:
            generate = pixel_art.watch(generate, info.conditional)
        labels = {
            "real": f"features of {len(real.images)} real images (once; cached)",
            "generated": "generated",
        }
        bars = {stage: LazyProgress(label, 0, "img", enabled=not as_json) for stage, label in labels.items()}
        try:
            report = measure(
                generate, real, n, on_progress=lambda stage, done, total: bars[stage].update(done, total)
            )
        finally:
            for bar in bars.values():
                bar.__exit__()
        doc = {"model": str(model), "data": data, "psi": psi, **report.__dict__}
        if pixel_art is not None:
            doc["pixel_art"] = pixel_art.scores()
        if as_json:
            echo_json(doc)
        else:
            typer.echo(
                f"FID {report.fid:.2f}   KID {report.kid * 1000:.2f} ± {report.kid_std * 1000:.2f} (x1e-3)   "
                f"{report.generated} generated vs {report.real} real"
            )
            if report.gate:
                g = report.gate
                typer.echo(
                    f"precision {g['precision']:.3f}   recall {g['recall']:.3f}   "
                    f"density {g['density']:.3f}   "
                    f"coverage {g['coverage']:.3f}   ({g['compared']} a side)"
                )
                typer.echo(
                    f"memorised {g['memorised']:.3f} of samples nearer a real than its nearest real "
                    f"(real vs real: {g['memorised_baseline']:.3f})"
                )
            if "pixel_art" in doc:
                typer.echo(pixel_art_line(doc["pixel_art"]))
        if out is not None:
            from artctl.fileio import write_json_atomic

            write_json_atomic(out, doc)

    run_command(body, as_json=as_json)


class PixelArtJudge:
    """Keeps the generated images of a pixel-art data set (one with a palette) and scores them."""

    def __init__(self, palette: list[str], art: Any) -> None:
        self.palette, self.art = palette, art
        self.images: list[npt.NDArray[np.uint8]] = []
        self.asked: list[str] | None = []

    @classmethod
    def of(cls, data: str, real: Any) -> PixelArtJudge | None:
        """A judge when `data` is a folder with a palette (palette.json, else the real images' colours
        when there are at most 256); with the Nouns parts too when the folder came from
        `artctl data nouns` (its parts.jsonl names the glasses)."""
        from artctl_trainer.datasets import PALETTE_FILE, distinct_colours, read_palette_file

        folder = Path(data)
        if not folder.is_dir():
            return None
        if (folder / PALETTE_FILE).is_file():
            palette: list[str] | None = read_palette_file(folder / PALETTE_FILE)
        else:
            palette = distinct_colours(list(real.images))
        if not palette:
            return None
        art = None
        parts = folder / "parts.jsonl"
        if parts.is_file() and "glasses_name" in parts.open().readline():
            from artctl_trainer.nouns import load_art

            art = load_art()
        return cls(palette, art)

    def watch(self, generate: Any, conditional: bool = True) -> Any:
        """`generate`, keeping what it makes; the labels count as asked for only when the model takes
        them (an unconditional model has no label fidelity)."""

        def watched(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
            images = generate(start, count, labels)
            self.images.append(images)
            if labels is None or self.asked is None or not conditional:
                self.asked = None
            else:
                self.asked.extend(labels)
            return images

        return watched

    def scores(self) -> dict[str, Any]:
        from artctl_trainer.pixelart import pixel_art_scores

        return pixel_art_scores(np.concatenate(self.images), self.palette, self.asked, self.art)


def pixel_art_line(scores: dict[str, Any]) -> str:
    """One line of the pixel-art scores that apply (raw -> snapped)."""
    parts = [f"off-palette {scores['off_palette_raw']:.3f} -> {scores['off_palette_snapped']:.3f} snapped"]
    for key, name in (
        ("noggles_exact", "noggles exact"),
        ("label_fidelity", "label fidelity"),
        ("heads_copied", "heads copied"),
    ):
        if f"{key}_raw" in scores:
            parts.append(f"{name} {scores[f'{key}_raw']:.3f} -> {scores[f'{key}_snapped']:.3f}")
    return "pixel art: " + "   ".join(parts)


@metrics_app.command("pixels")
def metrics_pixels(
    model: Path = typer.Option(..., "--model", help="An exported .onnx, or a run/checkpoint directory."),
    data: Path = typer.Option(..., "--data", help="The real pixel art: a folder with palette.json."),
    n: int = typer.Option(2000, "--n", help="Images to generate (seeds 0..n-1, labels as in the data)."),
    psi: float | None = typer.Option(None, help="Truncation psi for models with one."),
    out: Path | None = typer.Option(None, "--out", help="Also write the report as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Pixel-art quality without Inception (seconds, not minutes): off-palette pixels before and
    after the snap and, for `artctl data nouns` folders, noggles exact, label fidelity, heads copied."""

    def body() -> None:
        from artctl_trainer.metrics import real_images

        if n < 1:
            raise CliError("--n must be at least 1")
        generate, info = generator_source(model, psi)
        real = real_images(str(data), info.resolution, info.channels)
        judge = PixelArtJudge.of(str(data), real)
        if judge is None:
            raise CliError(f"{data} is not pixel art: no palette.json and more than 256 colours")
        watched = judge.watch(generate, info.conditional)
        for start in range(0, n, 256):
            watched(start, min(256, n - start), real.labels_for(start, min(256, n - start)))
        doc = {"model": str(model), "data": str(data), "psi": psi, **judge.scores()}
        if as_json:
            echo_json(doc)
        else:
            typer.echo(pixel_art_line(doc))
        if out is not None:
            from artctl.fileio import write_json_atomic

            write_json_atomic(out, doc)

    run_command(body, as_json=as_json)


GROUPS = (("metrics", metrics_app),)
