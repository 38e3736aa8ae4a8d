"""`artctl metrics`: a model's quality against a real image set (needs `train`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

from artctl.cli.common import TYPER_SETTINGS, CliError, LazyProgress, echo_json, run_command

metrics_app = typer.Typer(**TYPER_SETTINGS, help="Measure a model's quality.", no_args_is_help=True)


def generator_source(model: Path, psi: float | None = None) -> tuple[Any, Any]:
    """generate(start, count, labels) for an exported .onnx (ONNX Runtime) or a checkpoint (torch).

    Both follow the seed contract, so a model and its export measure the same images (up to the
    exporter's parity bound). Returns the function and the model's card or network config.
    """
    model = Path(model)
    if model.suffix != ".onnx":
        from trainer.metrics import checkpoint_source

        return checkpoint_source(model, psi)
    from serving.runtime import load_model
    from trainer.metrics import label_indices

    runtime = load_model(model)
    card = runtime.card
    names = list(card.label_names) if card.has_label else []

    def from_onnx(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
        seeds = np.arange(start, start + count, dtype=np.uint64)
        value = card.default_psi if psi is None else psi
        psi_arr = np.full(count, value, np.float32) if card.has_psi else None
        return runtime.render(seeds, psi_arr, label_indices(labels, names, seeds.tolist()))

    return from_onnx, card


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
        from trainer.metrics import measure, real_images

        if n < 2:
            raise CliError("--n must be at least 2")
        generate, info = generator_source(model, psi)
        real = real_images(data, info.resolution, info.channels)
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
        if out is not None:
            from artctl.fileio import write_json_atomic

            write_json_atomic(out, doc)

    run_command(body)


GROUPS = (("metrics", metrics_app),)
