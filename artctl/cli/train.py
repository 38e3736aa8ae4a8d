"""`artctl train`: flags -> trainer.config.resolve_config -> trainer.training_loop (needs `train`).

The flags that override config fields are a table (OVERRIDES), so each exists once: its type, its
help and the config field(s) it sets.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import typer

from artctl.cli.common import run_command

DEFAULT_RUN = Path("runs/dcgan")

# name, type, help, config fields it sets ("network." for network fields), bool flag spelling
OVERRIDES: list[tuple[str, type, str, tuple[str, ...], str | None]] = [
    ("architecture", str, "Network family: dcgan or stylegan.", ("network.architecture",), None),
    (
        "conditional",
        bool,
        "Condition on labels (sub-folder names).",
        ("network.conditional",),
        "--conditional/--unconditional",
    ),
    ("loss", str, "GAN loss: bce (non-saturating), hinge, wgan-gp, lsgan.", ("loss",), None),
    (
        "spectral_norm",
        bool,
        "Spectral normalisation on the discriminator.",
        ("network.spectral_norm",),
        "--spectral-norm/--no-spectral-norm",
    ),
    (
        "r1_gamma",
        float,
        "Lazy R1 penalty weight (default: 0.0002*res^2/batch for stylegan, off for dcgan).",
        ("r1_gamma",),
        None,
    ),
    (
        "augment",
        str,
        "Augmentation for small data, applied to reals and fakes: none, diffaug, ada.",
        ("augment",),
        None,
    ),
    (
        "labels_file",
        Path,
        "CSV (path,label) or JSON {path: label} with each image's label, instead of sub-folders.",
        ("labels_file",),
        None,
    ),
    (
        "tensorboard",
        bool,
        "Also log to RUN/tensorboard (pip install tensorboard).",
        ("tensorboard",),
        "--tensorboard/--no-tensorboard",
    ),
    ("resolution", int, "Image size in pixels (16..256, a power of two).", ("network.resolution",), None),
    ("channels", int, "3 (RGB) or 4 (RGBA, transparency kept).", ("network.channels",), None),
    ("z_dim", int, "Latent size.", ("network.z_dim",), None),
    ("steps", int, "Optimisation steps.", ("steps",), None),
    (
        "minutes",
        float,
        "Time budget: stop, with a checkpoint, after N minutes, even before --steps; 0: none.",
        ("minutes",),
        None,
    ),
    (
        "budget_clock",
        str,
        "What --minutes counts: wall (clock time) or cpu (this process's CPU time, all threads).",
        ("budget_clock",),
        None,
    ),
    ("batch", int, "Images per step.", ("batch",), None),
    ("lr", float, "Learning rate of G and D.", ("lr_g", "lr_d"), None),
    ("seed", int, "Training RNG seed.", ("seed",), None),
    ("mirror", bool, "Random horizontal flips of reals.", ("mirror",), "--mirror/--no-mirror"),
    ("sample_every", int, "Write a sample grid every N steps.", ("sample_every",), None),
    (
        "checkpoint_every",
        int,
        "Write a checkpoint every N steps (0: at the end).",
        ("checkpoint_every",),
        None,
    ),
    ("threads", int, "Torch CPU threads (0: torch's default).", ("threads",), None),
    (
        "device",
        str,
        "auto (CUDA when available), cpu or cuda; under torchrun each rank takes GPU LOCAL_RANK.",
        ("device",),
        None,
    ),
    (
        "precision",
        str,
        "auto (bf16 on GPU), bf16 or fp32: bf16 autocast on GPU; CPU always trains in fp32.",
        ("precision",),
        None,
    ),
]


def _parameters() -> list[inspect.Parameter]:
    def param(name: str, default: Any, annotation: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    data_help = (
        "Image folder (recursive; sub-folders = labels), a .zip of images, or synthetic:shapes "
        "[default: the config's data, the resumed run's data, else synthetic:shapes]."
    )
    out_help = "Run directory (checkpoints, samples, metrics) [runs/dcgan, or the resumed run]."
    preset_help = (
        "Start from a preset (dcgan64, emoji64-stylegan, emoji64-stylegan-cond, small-data-dcgan); "
        "--config and flags override it."
    )
    params = [
        param("data", typer.Argument(None, help=data_help), str | None),
        param("out", typer.Option(None, "--out", "-o", help=out_help), Path | None),
        param(
            "config",
            typer.Option(None, "--config", help="JSON training config; flags below override it."),
            Path | None,
        ),
        param("preset", typer.Option(None, help=preset_help), str | None),
    ]
    for name, kind, help_text, _, spelling in OVERRIDES:
        decls = (spelling,) if spelling else ()
        params.append(param(name, typer.Option(None, *decls, help=help_text), kind | None))
    dry_help = "Print the resolved config (preset <- --config <- flags) as JSON and exit."
    params += [
        param("resume", typer.Option(None, help="Continue from this run or checkpoint."), Path | None),
        param("dry_run", typer.Option(False, "--dry-run", help=dry_help), bool),
    ]
    return params


def overrides_from(flags: dict[str, Any]) -> dict[str, Any]:
    """The config layer the given flags make (network fields under "network")."""
    out: dict[str, Any] = {"network": {}}
    for name, kind, _, fields, _ in OVERRIDES:
        value = flags.get(name)
        if value is None:
            continue
        for field in fields:
            target, key = (out["network"], field[8:]) if field.startswith("network.") else (out, field)
            target[key] = str(value) if kind is Path else value
    return out


def train(**flags: Any) -> None:
    """Train a GAN and write safetensors checkpoints (needs the `train` extra).

    Several GPUs (or CPU processes): `torchrun --nproc-per-node N -m artctl train ...`; --batch is
    then the global batch, split evenly over the N ranks, and only rank 0 writes.
    """
    overrides = overrides_from(flags)
    if flags["data"] is not None:
        overrides["data"] = flags["data"]
    resume, config, preset = flags["resume"], flags["config"], flags["preset"]

    def body() -> None:
        from trainer.config import resolve_config

        base, run_dir = None, flags["out"]
        if resume is not None:
            from trainer.checkpoint import load_checkpoint, resolve_checkpoint

            if config is None and preset is None:
                base = load_checkpoint(resume).config
            if run_dir is None:  # RUN/checkpoints/step-N -> RUN
                run_dir = resolve_checkpoint(resume).parent.parent
        cfg = resolve_config(preset, config, base, overrides)
        if flags["dry_run"]:
            typer.echo(cfg.model_dump_json(indent=2))
            return
        _train(cfg, run_dir or DEFAULT_RUN, resume)

    run_command(body)


train.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]


def _train(cfg: Any, run_dir: Path, resume: Path | None) -> None:
    """Run the loop under a rich progress bar (rank 0 only under torchrun)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from trainer.training_loop import training_loop

    is_main = os.environ.get("RANK", "0") == "0"
    with Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        transient=False,
        disable=not is_main,
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
    if is_main:
        typer.echo(f"checkpoint: {last}")
        typer.echo(f"samples:    {run_dir}/samples-*.png   metrics: {run_dir}/metrics.jsonl")


COMMANDS = (train,)
