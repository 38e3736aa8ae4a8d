"""Checkpoints: a directory of safetensors files plus config.json, written atomically.

Layout of a run directory:
    RUN/config.json                      the TrainConfig, for reading without any checkpoint
    RUN/checkpoints/step-000200/         one complete checkpoint (written as .tmp-*, then renamed)
        config.json                      TrainConfig + data fingerprint + contract versions
        G.safetensors  G_ema.safetensors  D.safetensors  optim.safetensors
        G_avg.safetensors                G_ema's tail average, where the run keeps one (the generator
                                         export, metrics and samples then read)
        state.json                       step, image count and anything else needed to resume
    RUN/latest                           name of the newest complete checkpoint (atomic replace)

Nothing is pickled: torch.load is never used, so a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from artctl.fileio import DIR_MODE, write_bytes_atomic
from artctl_trainer.config import NetworkConfig, TrainConfig
from artctl_trainer.distributed import World, rank_seed

CHECKPOINT_FORMAT = "artctl-checkpoint-v1"
MODEL_FILES = ("G.safetensors", "G_ema.safetensors", "D.safetensors")
AVERAGE_FILE = "G_avg.safetensors"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt or of a format we refuse to read."""


@dataclass
class Checkpoint:
    path: Path
    config: TrainConfig
    meta: dict[str, Any]  # fingerprint, contracts, label names, ...

    @property
    def generator_file(self) -> str:
        """The generator it exports, scores and samples: G_ema's tail average where the run keeps one
        (`ema_average_from`, artctl_trainer.tail_average), else G_ema."""
        return AVERAGE_FILE if (self.path / AVERAGE_FILE).is_file() else "G_ema.safetensors"

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        file = self.path / name
        if not file.is_file():
            raise CheckpointError(f"{self.path} has no {name}")
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file ({exc})") from exc


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never half."""
    write_bytes_atomic(Path(path), text.encode(), fsync=True)


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    state = opt.state_dict()
    tensors = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
    return tensors, state["param_groups"]


def _restore_optimizer(
    prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: Any
) -> None:
    """The checkpoint's moments and step counts under the hyperparameters `opt` was built with.

    A resumed run trains at the rates and betas its config asks for (`--resume RUN --lr-d X` means
    X from here on); the saved groups give only the parameter order. Unchanged, the two are equal.
    """
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        head, index, key = name.split(".", 2)
        if head == prefix:
            state.setdefault(int(index), {})[key] = value
    current = opt.state_dict()["param_groups"]
    merged = [{**now, "params": saved["params"]} for now, saved in zip(current, groups, strict=True)]
    opt.load_state_dict({"state": state, "param_groups": merged})


def save_checkpoint(
    run_dir: Path,
    config: TrainConfig,
    meta: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> Path:
    """Write a complete checkpoint into run_dir/checkpoints/step-N and point run_dir/latest at it."""
    run_dir = Path(run_dir)
    parent = run_dir / "checkpoints"
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / f"step-{int(state['step']):06d}"
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))
    tmp.chmod(DIR_MODE)  # mkdtemp makes it owner-only; a checkpoint is shared like any folder
    try:
        for name, module in modules.items():
            # CPU tensors: a checkpoint written on a GPU loads anywhere (load_state_dict moves them).
            sd = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
            save_file(sd, str(tmp / f"{name}.safetensors"), metadata={"format": CHECKPOINT_FORMAT})
        opt_tensors: dict[str, torch.Tensor] = {}
        groups = {}
        for name, opt in optimizers.items():
            tensors, groups[name] = _optimizer_tensors(name, opt)
            opt_tensors.update(tensors)
        save_file(
            opt_tensors,
            str(tmp / "optim.safetensors"),
            # One key: safetensors writes its metadata map in hash order, so two keys would give
            # identical checkpoints different bytes (the format is checked in config.json).
            metadata={"param_groups": json.dumps(groups, sort_keys=True)},
        )
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        doc = {"format": CHECKPOINT_FORMAT, "train": config.model_dump(mode="json"), **meta}
        (tmp / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
        old = None
        if final.exists():  # never delete the old copy before the new one is in place
            old = parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / "latest", final.name + "\n")
    return final


RUN_FILES = ("config.json", "metrics.jsonl", "latest", "checkpoints")


class RunFolderInUse(CheckpointError):
    """A fresh run was pointed at a folder that holds another run."""


def next_free_run_dir(path: Path) -> Path:
    """`path` when it holds no run, else the first of path-2, path-3, ... that holds none."""
    path = Path(path)
    candidate, n = path, 1
    while any((candidate / name).exists() for name in RUN_FILES):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def check_fresh_run_dir(run_dir: Path) -> None:
    """A fresh run must not mix its metrics and checkpoints with another run's."""
    run_dir = Path(run_dir)
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        steps = (
            sorted(p.name for p in (run_dir / "checkpoints").glob("step-*")) if "checkpoints" in found else []
        )
        held = f"checkpoints up to {steps[-1]}" if steps else ", ".join(found)
        raise RunFolderInUse(
            f"{run_dir} already holds a run ({held}): continue it with --resume {run_dir}, or start "
            f"a new one in another folder (--out {next_free_run_dir(run_dir)} is free)"
        )


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints, never the one `latest` or `best` names."""
    run_dir = Path(run_dir)
    steps = sorted((run_dir / "checkpoints").glob("step-*"))
    pinned = {
        (run_dir / name).read_text().strip() for name in ("latest", "best") if (run_dir / name).is_file()
    }
    removed = [p for p in steps[: max(0, len(steps) - keep)] if p.name not in pinned]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint directory, or a run directory (its latest checkpoint)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise CheckpointError(
                f"{path} looks like a pickled checkpoint; artctl reads only safetensors checkpoints "
                "(a pickle can run arbitrary code when loaded)"
            )
        raise CheckpointError(f"{path} is a file; give a run directory or a checkpoint directory")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if (path / "latest").is_file():
        path = path / "checkpoints" / (path / "latest").read_text().strip()
    elif (path / "metrics.jsonl").is_file() or (path / "checkpoints").is_dir():
        raise CheckpointError(
            f"{path} is a run with no checkpoint yet (it stopped before writing one): start it again "
            "without --resume, into a new folder"
        )
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} is not a checkpoint (no config.json)")
    return path


def load_checkpoint(path: Path, require: tuple[str, ...] = MODEL_FILES) -> Checkpoint:
    """Open a checkpoint (or a run's latest) and validate its config. Scoring and export need only
    the generator they use (`require`): a generator-only checkpoint, as the GPU run brings back,
    scores and exports but cannot resume."""
    path = resolve_checkpoint(path)
    try:
        doc = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON ({exc})") from exc
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has format {doc.get('format')!r}; expected {CHECKPOINT_FORMAT}")
    try:
        config = TrainConfig.model_validate(doc.pop("train"))
    except Exception as exc:
        first = str(exc).splitlines()
        raise CheckpointError(
            f"{path / 'config.json'}: invalid training config: {' '.join(first[:3])}"
        ) from exc
    for name in require:
        if not (path / name).is_file():
            raise CheckpointError(f"{path} is incomplete: {name} is missing")
    return Checkpoint(path=path, config=config, meta=doc)


def load_optimizers(ckpt: Checkpoint, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Restore optimiser state saved by save_checkpoint."""
    from safetensors import safe_open

    file = ckpt.path / "optim.safetensors"
    with safe_open(str(file), framework="pt") as handle:
        groups = json.loads((handle.metadata() or {})["param_groups"])
    tensors = ckpt.tensors("optim.safetensors")
    for name, opt in optimizers.items():
        _restore_optimizer(name, opt, tensors, groups[name])


# -- resuming ---------------------------------------------------------------------------------------


def rank_rng_state(state: dict[str, Any], seed: int, world: World) -> torch.Tensor:
    """This rank's generator state from a checkpoint; a fresh stream if the world size changed."""
    by_rank = state.get("rng_by_rank")
    if by_rank is not None and len(by_rank) == world.size:
        saved = by_rank[world.rank]
    elif world.is_main:
        saved = state["rng"]
    else:  # resumed with more ranks than saved: a new stream per (seed, rank, step)
        fresh = torch.Generator().manual_seed(rank_seed(seed + int(state["step"]), world.rank))
        return fresh.get_state()
    return torch.tensor(saved, dtype=torch.uint8)


def check_resumable(ck: Checkpoint, net_cfg: NetworkConfig, fingerprint: str) -> None:
    """Resuming on other data or another network would silently train something else."""
    if ck.config.network != net_cfg:
        raise CheckpointError(
            f"{ck.path} was trained with another network config; resume with the run's own config "
            "(omit --config/--preset and network flags)"
        )
    saved = ck.meta.get("data_fingerprint")
    if saved and saved != fingerprint:
        raise CheckpointError(
            f"{ck.path} was trained on other data ({ck.meta.get('data_source', 'unknown')}, fingerprint "
            f"{str(saved)[:12]}); give the same data to resume"
        )


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint being resumed, so steps are not logged twice."""
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step
    ]
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
