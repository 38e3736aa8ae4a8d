"""Devices, bf16 autocast and torchrun DDP, tested on CPU (2 gloo processes under torchrun).

Run as a module (`python -m torch.distributed.run --nproc-per-node 2 -m tests.test_distributed OUT`)
this file is also the per-rank worker: it trains a few tiny runs and writes, per rank, what each
rank ended with (parameter hashes, ADA p, how many checkpoints it wrote).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from artctl_trainer.config import TrainConfig
from tests.helpers import train_tiny

ROOT = Path(__file__).resolve().parents[1]
STYLEGAN = {"architecture": "stylegan", "conditional": True}
# ADA adjusts every step and fast, lazy R1 every other step, style mixing always: all the DDP hazards.
STYLEGAN_TRAIN = {
    "augment": "ada",
    "ada_p": 0.2,
    "ada_interval": 1,
    "ada_kimg": 0.05,
    "r1_gamma": 1.0,
    "r1_interval": 2,
    "style_mixing": 1.0,
    "mirror": True,
    "checkpoint_every": 2,
}
DCGAN = {"spectral_norm": True}
DCGAN_TRAIN = {"loss": "wgan-gp", "augment": "diffaug"}


def _digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _worker(out: Path) -> None:
    """One rank: train, and record what this rank holds at the end of each run."""
    import artctl_trainer.checkpoint
    import artctl_trainer.reporting
    import artctl_trainer.training_loop as loop

    rank = int(os.environ["RANK"])
    built: dict[str, Any] = {}
    writes = {"checkpoints": 0, "plots": 0}

    def recording(name: str, fn: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            built[name] = fn(*args, **kwargs)
            return built[name]

        return build

    def counting(key: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            writes[key] += 1
            return fn(*args, **kwargs)

        return call

    loop.nets.build_generator = recording("G", loop.nets.build_generator)  # type: ignore[assignment]
    loop.nets.build_discriminator = recording("D", loop.nets.build_discriminator)  # type: ignore[assignment]
    loop.AdaController = recording("ada", loop.AdaController)  # type: ignore[misc]
    artctl_trainer.checkpoint.save_checkpoint = counting(
        "checkpoints", artctl_trainer.checkpoint.save_checkpoint
    )
    artctl_trainer.reporting.plot_losses = counting("plots", artctl_trainer.reporting.plot_losses)

    runs: dict[str, Path] = {}

    def record(name: str) -> None:
        doc = {
            "last": str(runs[name]),
            "G": _digest(built["G"]),
            "D": _digest(built["D"]),
            "ada_p": built["ada"].p,
            **writes,
        }
        (out / f"{name}-rank{rank}.json").write_text(json.dumps(doc))
        writes.update(checkpoints=0, plots=0)

    runs["straight"] = train_tiny(out / "straight", steps=4, train=STYLEGAN_TRAIN, **STYLEGAN)
    record("straight")
    train_tiny(out / "split", steps=2, train=STYLEGAN_TRAIN, **STYLEGAN)
    runs["resumed"] = train_tiny(
        out / "split", steps=4, train=STYLEGAN_TRAIN, resume=out / "split", **STYLEGAN
    )
    record("resumed")
    runs["dcgan"] = train_tiny(out / "dcgan", steps=2, train=DCGAN_TRAIN, **DCGAN)
    record("dcgan")


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "tests.test_distributed",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


def _ranks(out: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads((out / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("name", ["straight", "resumed", "dcgan"])
def test_ddp_ranks_stay_in_sync_and_only_rank0_writes(ddp_runs: Path, name: str) -> None:
    r0, r1 = _ranks(ddp_runs, name)
    assert r0["G"] == r1["G"], "G's parameters differ between ranks"
    assert r0["D"] == r1["D"], "D's parameters differ between ranks"
    assert r0["ada_p"] == r1["ada_p"], "ranks adapted ADA p differently"
    assert r0["last"] == r1["last"], "ranks disagree on the last checkpoint"
    assert r0["checkpoints"] >= 1 and r0["plots"] >= 1
    assert r1["checkpoints"] == 0 and r1["plots"] == 0, "rank 1 wrote files"
    run = Path(r0["last"]).parent.parent
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), "metrics written by more than one rank"
    ck = Path(r0["last"])
    tensors = load_file(str(ck / "G_ema.safetensors"))
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in tensors.values())
    state = json.loads((ck / "state.json").read_text())
    assert len(state["rng_by_rank"]) == 2 and state["rng_by_rank"][0] != state["rng_by_rank"][1]
    assert state["kimg"] == state["step"] * 8 / 1000, "batch is the global batch (4 per rank)"


def test_ddp_adapts_ada_p_from_both_ranks(ddp_runs: Path) -> None:
    r0, _ = _ranks(ddp_runs, "straight")
    records = [
        json.loads(line) for line in (ddp_runs / "straight" / "metrics.jsonl").read_text().splitlines()
    ]
    # One adjustment after step 1 moves p by (images seen) / (ada_kimg * 1000): 8 global images, not 4.
    assert abs(records[0]["ada_p"] - STYLEGAN_TRAIN["ada_p"]) == pytest.approx(8 / 50)
    state = json.loads((Path(r0["last"]) / "state.json").read_text())
    assert state["ada"]["p"] == r0["ada_p"]


def test_ddp_resume_equals_an_uninterrupted_ddp_run(ddp_runs: Path) -> None:
    straight, resumed = ddp_runs / "straight" / "checkpoints", ddp_runs / "split" / "checkpoints"
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors", "optim.safetensors"):
        a, b = load_file(str(straight / "step-000004" / name)), load_file(str(resumed / "step-000004" / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key} differs after a DDP resume"
    sa = json.loads((straight / "step-000004" / "state.json").read_text())
    sb = json.loads((resumed / "step-000004" / "state.json").read_text())
    assert sa == sb


def test_global_batch_must_split_across_ranks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from artctl_trainer import distributed

    world = distributed.World(rank=0, size=3)
    monkeypatch.setattr(
        "artctl_trainer.training_loop.init_world", lambda device: (world, torch.device("cpu"))
    )
    with pytest.raises(ValueError, match="global batch"):
        train_tiny(tmp_path / "run", steps=1)


def test_device_and_precision_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from artctl_trainer.distributed import DeviceError, amp_dtype, rank_seed, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    cpu = torch.device("cpu")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "fp32") is None
    with pytest.warns(UserWarning, match="GPU-only"):
        assert amp_dtype(cpu, "bf16") is None
    assert rank_seed(7, 0) == 7, "rank 0 keeps the single-process stream"
    assert len({rank_seed(7, r) for r in range(4)}) == 4
    cfg = TrainConfig()
    assert (cfg.device, cfg.precision) == ("auto", "auto")
    with pytest.raises(ValueError):
        TrainConfig(device="tpu")  # type: ignore[arg-type]


def test_explicit_cpu_and_bf16_request_train_the_same_bits(tmp_path: Path) -> None:
    """On CPU, device=cpu and precision=bf16 (which falls back to fp32) change nothing."""
    base = train_tiny(tmp_path / "auto", steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = train_tiny(tmp_path / "cpu", steps=2, train={"device": "cpu", "precision": "bf16"})
    for name in ("G.safetensors", "D.safetensors"):
        a, b = load_file(str(base / name)), load_file(str(other / name))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_autocast_path_trains_stylegan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU's bf16 path, run under CPU autocast: dtypes line up (w_avg, R1, ADA, EMA in fp32)."""
    monkeypatch.setattr("artctl_trainer.training_loop.amp_dtype", lambda device, precision: torch.bfloat16)
    train = {**STYLEGAN_TRAIN, "checkpoint_every": 0}
    last = train_tiny(tmp_path / "run", steps=2, train=train, **STYLEGAN)
    for name in ("G", "G_ema", "D"):
        tensors = load_file(str(last / f"{name}.safetensors"))
        assert all(t.dtype in (torch.float32, torch.int64) for t in tensors.values())
        assert all(torch.isfinite(t).all() for t in tensors.values())
    dc = train_tiny(tmp_path / "dcgan", steps=2, train=DCGAN_TRAIN, **DCGAN)
    assert all(torch.isfinite(t).all() for t in load_file(str(dc / "G.safetensors")).values())


def test_cli_has_device_and_precision_flags() -> None:
    from typer.testing import CliRunner

    from artctl.cli import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--device" in result.output and "--precision" in result.output


def test_cli_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from artctl.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["train", "--device", "cuda", "--steps", "1", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "no CUDA GPU" in result.output
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
