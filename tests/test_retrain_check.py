"""bench.retrain: the check behind the model card's "re-trains bit for bit" on real checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from artctl_trainer.checkpoint import load_checkpoint
from bench.retrain import compare


def test_compare_finds_identical_runs_and_one_changed_value(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    same = compare(tiny_run, copy)
    assert same["identical"] and set(same["files"]) == {"G", "G_ema", "D", "optim"}
    assert all(f["sha256_a"] == f["sha256_b"] for f in same["files"].values())

    path = load_checkpoint(copy).path / "G_ema.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in sorted(tensors) if tensors[k].is_floating_point())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] += 2.0**-10  # one value, one small step
    save_file(tensors, str(path))
    changed = compare(tiny_run, copy)
    assert not changed["identical"]
    assert changed["files"]["G_ema"]["differing"] == 1
    assert changed["files"]["G_ema"]["largest_difference"] > 0
    assert changed["files"]["G_ema"]["sha256_a"] != changed["files"]["G_ema"]["sha256_b"]
    assert all(changed["files"][name]["differing"] == 0 for name in ("G", "D", "optim"))
