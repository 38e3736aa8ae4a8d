"""`artctl train`: flags -> artctl_trainer.presets.resolve_config -> artctl_trainer.training_loop
(needs `train`).

The flags that override config fields are generated from the config's fields (config_flags), so
each exists once: its type, its choices and its help.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import typer

from artctl.cli.common import run_command, unset_flag_type

RUNS = Path("runs")  # a run without --out goes to runs/PRESET (numbered -2, -3, ... when taken)

# The flags are generated from the config's own fields (TrainConfig, and NetworkConfig's under
# "network."), so each option is said once, with its type, its choices and its help. These are no
# flags: the data is the argument, and the rest come from the data.
NO_FLAG = {"network", "data", "label_names", "palette", "trait_values"}
# Bool flags with another spelling than --x/--no-x.
BOOL_SPELLING = {"conditional": "--conditional/--unconditional"}
# Flags that set several fields at once: name -> (type, help, the fields).
SHORTHANDS: dict[str, tuple[type, str, tuple[str, ...]]] = {
    "lr": (float, "Learning rate of G and D (both --lr-g and --lr-d).", ("lr_g", "lr_d")),
}


def config_flags() -> list[tuple[str, str, Any]]:
    """(flag name, the config field it sets, its pydantic field) for every field a flag sets."""
    from artctl_trainer.config import NetworkConfig, TrainConfig

    out = [(n, n, f) for n, f in TrainConfig.model_fields.items() if n not in NO_FLAG]
    out += [(n, "network." + n, f) for n, f in NetworkConfig.model_fields.items() if n not in NO_FLAG]
    names = [n for n, _, _ in out] + list(SHORTHANDS)
    assert len(names) == len(set(names)), "a TrainConfig field and a NetworkConfig field share a name"
    return out


def _parameters() -> list[inspect.Parameter]:
    def param(name: str, default: Any, annotation: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    data_help = (
        "Image folder (recursive; sub-folders = labels), a .zip of images, or synthetic:shapes "
        "[default: the config's data, the resumed run's data, else synthetic:shapes]."
    )
    out_help = (
        "Run directory (checkpoints, samples, metrics); must not hold another run "
        "[runs/PRESET, numbered when taken; or the resumed run]."
    )
    preset_help = (
        "A recipe (--list-presets shows them); --config and flags override it. Default: chosen by "
        "the family (--architecture) and the number of images (augmentation under 2,000)."
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
    for name, (kind, help_text, _) in SHORTHANDS.items():
        params.append(param(name, typer.Option(None, help=help_text), kind | None))
    for name, _, field in config_flags():
        help_text = (field.description or name.replace("_", " ")).rstrip(".") + "."
        decls: tuple[str, ...] = ()
        if field.annotation is bool:
            flag = "--" + name.replace("_", "-")
            decls = (BOOL_SPELLING.get(name, f"{flag}/--no-{flag[2:]}"),)
        params.append(
            param(name, typer.Option(None, *decls, help=help_text), unset_flag_type(field.annotation))
        )
    dry_help = "Print the resolved config (preset <- --config <- flags) as JSON and exit."
    params += [
        param("resume", typer.Option(None, help="Continue from this run or checkpoint."), Path | None),
        param("dry_run", typer.Option(False, "--dry-run", help=dry_help), bool),
        param("list_presets", typer.Option(False, "--list-presets", help="List the presets and exit."), bool),
    ]
    return params


def overrides_from(flags: dict[str, Any]) -> dict[str, Any]:
    """The config layer the given flags make (network fields under "network")."""
    out: dict[str, Any] = {"network": {}}
    sets = [(name, fields) for name, (_, _, fields) in SHORTHANDS.items()]
    sets += [(name, (field,)) for name, field, _ in config_flags()]
    for name, fields in sets:
        value = flags.get(name)
        if value is None:
            continue
        for field in fields:
            target, key = (out["network"], field[8:]) if field.startswith("network.") else (out, field)
            target[key] = value
    return out


def train(**flags: Any) -> None:
    """Train a GAN and write safetensors checkpoints (needs the `train` extra).

    Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits (130 or 143); --resume RUN
    then continues exactly as if the run had not stopped. Several GPUs (or CPU processes):
    `torchrun --nproc-per-node N -m artctl train ...`; --batch is then the global batch, split
    evenly over the N ranks, and only rank 0 writes.
    """
    overrides = overrides_from(flags)
    if flags["data"] is not None:
        overrides["data"] = flags["data"]
    resume, config, preset = flags["resume"], flags["config"], flags["preset"]

    def body() -> None:
        from artctl_trainer.presets import PRESET_NOTES, resolve_config

        if flags["list_presets"]:
            for name, note in PRESET_NOTES.items():
                typer.echo(f"{name:24} {note}")
            return
        base, run_dir, chosen = None, flags["out"], preset
        if resume is not None:
            from artctl_trainer.checkpoint import load_checkpoint, resolve_checkpoint

            if config is None and preset is None:
                base = load_checkpoint(resume).config
            if run_dir is None:  # RUN/checkpoints/step-N -> RUN
                run_dir = resolve_checkpoint(resume).parent.parent
        elif config is None and preset is None:
            chosen = _auto_preset(overrides)
        cfg = resolve_config(chosen, config, base, overrides)
        if flags["dry_run"]:
            typer.echo(cfg.model_dump_json(indent=2))
            return
        if run_dir is None:
            from artctl_trainer.checkpoint import next_free_run_dir

            run_dir = next_free_run_dir(RUNS / (chosen or cfg.network.architecture))
        elif resume is None:
            from artctl_trainer.checkpoint import check_fresh_run_dir

            check_fresh_run_dir(run_dir)  # before the data loads, not after
        _train(cfg, run_dir, resume, chosen)

    run_command(body)


train.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]


def _auto_preset(overrides: dict[str, Any]) -> str:
    """The family's recipe for the data's size, said on stderr (so --dry-run's JSON stays clean)."""
    from artctl_trainer.datasets import PALETTE_FILE, count_images
    from artctl_trainer.presets import PIXEL_PRESETS, PRESET_NOTES, PRESETS, SMALL_DATA, auto_preset
    from artctl_trainer.trait_layers import PARTS_FILE, names_traits

    data = overrides.get("data", "synthetic:shapes")
    images = count_images(data)
    folder = Path(data)
    pixel_art = folder.is_dir() and (folder / PALETTE_FILE).is_file()
    labelled = folder.is_dir() and sum(1 for p in folder.iterdir() if p.is_dir()) >= 2
    layered = names_traits(folder, PRESETS["nouns32"]["network"]["trait_layers"])
    architecture = overrides["network"].get("architecture", "dcgan")
    name = auto_preset(architecture, images, pixel_art, labelled, layered)
    if pixel_art and name in PIXEL_PRESETS:
        why = f"{data} has a {PALETTE_FILE}: pixel art"
        if name == "nouns32":
            why += f", and a {PARTS_FILE} naming each image's traits"
    else:
        why = f"{data} has {images:,} images, {'under' if images < SMALL_DATA else 'at least'} {SMALL_DATA:,}"
    flips = (
        "no flips: pixel-art characters face one way"
        if name in PIXEL_PRESETS
        else "random horizontal flips (--no-mirror for art that must not be mirrored)"
    )
    typer.echo(
        f"preset: {name} ({PRESET_NOTES[name]}; {why}); {flips}; --preset NAME picks another", err=True
    )
    return name


def _eta(record: dict[str, Any], total: int) -> str:
    """Time to the end: the steps left at the current rate, or the budget left when sooner."""
    rate = record["img_per_s"]
    batch_per_step = record["kimg"] * 1000 / max(record["step"], 1)
    left = (total - record["step"]) * batch_per_step / rate if rate > 0 else float("inf")
    budget = record.get("budget_left_s")
    reason = ""
    if budget is not None and budget < left:
        left, reason = budget, " (time budget)"
    if left == float("inf"):
        return "ETA -"
    minutes, seconds = divmod(int(left), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{seconds:02d}{reason}"


def _train(cfg: Any, run_dir: Path, resume: Path | None, recipe: str | None = None) -> None:
    """Run the loop under a rich progress bar (rank 0 only under torchrun); without a terminal on
    stderr, plain lines instead (artctl_trainer.reporting.PlainLog)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from artctl_trainer.reporting import PlainLog
    from artctl_trainer.stopping import EXIT_CODES, StopSignal
    from artctl_trainer.training_loop import Trainer

    is_main = os.environ.get("RANK", "0") == "0"
    console = Console(stderr=True)
    plain = None if console.is_terminal else PlainLog(cfg.steps, cfg.batch, lambda t: typer.echo(t, err=True))
    with StopSignal() as stop:
        job = Trainer(cfg, run_dir)  # loading the data: a signal here stops before step 1
        _hint_labels(job)
        if plain is not None and is_main:
            plain.watch(job)
        with Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[info]}"),
            TextColumn("{task.fields[eta]}"),
            console=console,
            transient=False,
            disable=not is_main or plain is not None,
        ) as progress:
            task = progress.add_task("train", total=cfg.steps, info="", eta="")

            def on_progress(rec: dict[str, Any]) -> None:
                info = (
                    f"kimg {rec['kimg']:.2f}  {rec['img_per_s']:.0f} img/s  "
                    f"D {rec['loss_D']:.3f}  G {rec['loss_G']:.3f}"
                )
                if "ada_p" in rec:
                    info += f"  ADA p {rec['ada_p']:.3f}"
                if plain is not None:
                    plain.record(rec, _eta(rec, cfg.steps))
                else:
                    progress.update(task, completed=rec["step"], info=info, eta=_eta(rec, cfg.steps))
                if "stopped" in rec:
                    typer.echo(f"stopped at step {rec['step']}: {rec['stopped']}", err=True)

            last = job.run(resume=resume, on_progress=on_progress, stop=stop)
    if not is_main:
        return
    typer.echo(f"checkpoint: {last}")
    typer.echo(f"samples:    {run_dir}/samples-*.png   metrics: {run_dir}/metrics.jsonl")
    # The recipe used, where a re-run can take it from (`--config`): the preset's name when one was.
    named = f"{recipe}, as run: " if recipe else ""
    typer.echo(f"recipe:     {named}{run_dir}/config.json  (artctl train --config {run_dir}/config.json)")
    if job.interrupted:
        typer.echo(f"interrupted: continue with  artctl train --resume {run_dir}", err=True)
        raise typer.Exit(EXIT_CODES.get(job.interrupted, 130))


def _hint_labels(job: Any) -> None:
    """What the data loader found that the user should know: files it could not read (named), and
    sub-folders that look like labels in an unconditional run."""
    skipped = job.data.skipped
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        typer.echo(
            f"note: skipped {len(skipped)} unreadable file(s): {'; '.join(skipped[:5])}{more}", err=True
        )
    names = job.data.label_names
    if names and not job.net.conditional and not job.config.data.startswith("synthetic:"):
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        typer.echo(
            f"note: {job.config.data} has {len(names)} sub-folders ({shown}); they are ignored "
            "unless you train with --conditional, which makes them labels",
            err=True,
        )


COMMANDS = (train,)
