"""The training loop, datasets and checkpoints on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from artctl_trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from artctl_trainer.config import NetworkConfig, TrainConfig
from artctl_trainer.datasets import DatasetError, ImageDataset, load_folder, synthetic_shapes
from artctl_trainer.training_loop import training_loop
from tests.helpers import train_tiny


def test_training_writes_a_complete_checkpoint(tiny_run: Path) -> None:
    ck = load_checkpoint(tiny_run)
    assert ck.path.name == "step-000004"
    assert (tiny_run / "latest").read_text().strip() == "step-000004"
    for name in ("G", "G_ema", "D"):
        tensors = load_file(str(ck.path / f"{name}.safetensors"))
        assert tensors and all(torch.isfinite(t.float()).all() for t in tensors.values())
    assert ck.meta["contracts"]["latent"] == "artctl-latent-v1"
    assert len(ck.meta["data_fingerprint"]) == 64
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite([r["loss_D"], r["loss_G"]]).all() for r in records)
    assert (tiny_run / "samples-000004.png").is_file()
    assert not list((tiny_run / "checkpoints").glob(".tmp-*")), "temporary checkpoint left behind"


@pytest.mark.parametrize(("resolution", "channels"), [(32, 3), (64, 4)])
def test_dcgan_sizes_train_without_nan(tmp_path: Path, resolution: int, channels: int) -> None:
    last = train_tiny(tmp_path / "run", steps=2, resolution=resolution, channels=channels)
    G = load_file(str(last / "G_ema.safetensors"))
    assert all(torch.isfinite(t.float()).all() for t in G.values())
    assert Image.open(tmp_path / "run" / "samples-000002.png").size[0] > resolution


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_resume_equals_an_uninterrupted_run(tmp_path: Path, memory_format: str) -> None:
    def cfg(steps: int) -> TrainConfig:
        net = NetworkConfig(resolution=16, channels=4, z_dim=16, g_base=8, d_base=8)
        return TrainConfig(
            network=net,
            steps=steps,
            batch=8,
            synthetic_size=64,
            sample_every=100,
            log_every=100,
            memory_format=memory_format,  # type: ignore[arg-type]
        )

    straight = training_loop(cfg(6), tmp_path / "straight")
    training_loop(cfg(3), tmp_path / "split")
    resumed = training_loop(cfg(6), tmp_path / "split", resume=tmp_path / "split")
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors", "optim.safetensors"):
        a, b = load_file(str(straight / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key} differs after resume"


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_time_budget_stops_early_with_a_checkpoint_and_resume_goes_on(tmp_path: Path, clock: str) -> None:
    run = tmp_path / "run"
    budget = {"minutes": 0.01, "budget_clock": clock, "log_every": 1000}
    first = train_tiny(run, steps=100_000, train=budget)
    stopped_at = int(first.name.removeprefix("step-"))
    assert 0 < stopped_at < 100_000
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == stopped_at and records[-1]["stopped"].startswith("time budget: 0.01 min")
    assert (run / f"samples-{stopped_at:06d}.png").is_file()
    again = train_tiny(run, steps=100_000, train=budget, resume=run)
    assert int(again.name.removeprefix("step-")) > stopped_at
    for bad in ({"minutes": -1.0}, {"budget_clock": "sundial"}):
        with pytest.raises(ValueError):
            TrainConfig.model_validate(bad)


def test_folder_dataset_labels_skips_and_errors(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("RGBA", (20, 30), (i * 40, 10, 200, 128)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "cats" / "broken.png").write_bytes(b"not a png")
    data = load_folder(tmp_path, resolution=16, channels=4)
    assert len(data) == 10 and data.label_names == ["cats", "dogs"]
    assert data.images.shape == (10, 4, 16, 16) and data.images.dtype == torch.uint8
    assert data.images[:, 3].eq(128).all()  # the files' alpha, as stored
    assert data.skipped == ["cats/broken.png (not an image Pillow can read)"]  # named, with why
    rgb = load_folder(tmp_path, resolution=16, channels=3)
    assert rgb.images.shape[1] == 3
    assert load_folder(tmp_path, 16, 4).fingerprint == data.fingerprint


def test_uint8_images_give_the_floats_the_trainer_always_trained_on(tmp_path: Path) -> None:
    every = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    data = ImageDataset(torch.from_numpy(every), torch.zeros(1, dtype=torch.int64), [], "fp", "test")
    before = np.arange(256, dtype=np.uint8).astype(np.float32) / 127.5 - 1.0  # the old whole-set floats
    assert np.array_equal(data.floats(torch.tensor([0]))[0, 0].flatten().numpy(), before)  # bit for bit


def test_empty_or_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "nope", 16, 4)
    (tmp_path / "few").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "few" / "a.png")
    with pytest.raises(DatasetError, match="1 readable image"):
        load_folder(tmp_path / "few", 16, 4)


def test_synthetic_shapes_are_reproducible() -> None:
    a, b = synthetic_shapes(12, 16, 4), synthetic_shapes(12, 16, 4)
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    alpha = a.floats(torch.arange(len(a)))[:, 3]
    assert (alpha < 0).any() and (alpha > 0.9).any(), "RGBA shapes keep a transparent background"


def test_checkpoint_errors_are_clear(tmp_path: Path, tiny_run: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(pickle)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(broken)


def test_cli_resume_keeps_the_runs_data_and_folder(tmp_path: Path) -> None:
    """`artctl train --resume RUN` continues RUN on RUN's data (not the default data set)."""
    import subprocess
    import sys

    art = tmp_path / "art"
    for label in ("a", "b"):
        (art / label).mkdir(parents=True)
        for i in range(5):
            color = (i * 50, 20, 90 if label == "a" else 200, 255)
            Image.new("RGBA", (16, 16), color).save(art / label / f"{i}.png")
    run = tmp_path / "run"

    def artctl(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "artctl", "train", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    first = artctl(str(art), "--out", str(run), "--steps", "2", "--resolution", "16", "--batch", "4")
    assert first.returncode == 0, first.stderr
    again = artctl("--resume", str(run), "--steps", "3")
    assert again.returncode == 0, again.stderr
    ck = load_checkpoint(run)
    assert ck.path.name == "step-000003" and ck.config.data == str(art)
    first_ck = load_checkpoint(run / "checkpoints" / "step-000002")
    assert ck.meta["data_fingerprint"] == first_ck.meta["data_fingerprint"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "steps logged twice after resume"
    other = artctl("synthetic:shapes", "--resume", str(run), "--steps", "4")
    assert other.returncode != 0 and "other data" in other.stderr
    noop = artctl("--resume", str(run), "--steps", "3")
    assert noop.returncode == 0 and load_checkpoint(run).path.name == "step-000003"


@pytest.mark.parametrize("by", ["fid", "kid"])
def test_scored_checkpoints_keep_a_best_pointer_and_a_loss_curve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the real-feature cache stays inside the test
    run = tmp_path / "run"
    train_tiny(run, steps=4, train={"checkpoint_every": 2, "fid_n": 8, "best_by": by})
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "fid" in r]
    assert [r["checkpoint"] for r in scored] == ["step-000002", "step-000004"]
    assert all({"precision", "recall", "coverage", "memorised"} <= set(r) for r in scored)
    best = json.loads((run / "best.json").read_text())
    assert best["by"] == by and best[by] == min(r[by] for r in scored)
    assert (run / "best").read_text().strip() == best["checkpoint"]
    assert (run / "checkpoints" / best["checkpoint"]).is_dir()
    assert Image.open(run / "loss-curve.png").size[0] > 100


def test_labels_file_overrides_folders(tmp_path: Path) -> None:
    from artctl_trainer.datasets import load_dataset

    art = tmp_path / "art"
    art.mkdir()
    for i in range(10):
        Image.new("RGBA", (16, 16), (i * 20, 0, 0, 255)).save(art / f"{i}.png")
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "path,label\n" + "".join(f"{i}.png,{'odd' if i % 2 else 'even'}\n" for i in range(10))
    )
    data = load_dataset(str(art), 16, 4, labels_file=str(csv_file))
    assert data.label_names == ["even", "odd"] and data.labels.tolist() == [0, 1] * 5
    json_file = tmp_path / "labels.json"
    json_file.write_text(json.dumps({f"{i}.png": "even" if i % 2 == 0 else "odd" for i in range(10)}))
    assert load_dataset(str(art), 16, 4, labels_file=str(json_file)).fingerprint == data.fingerprint
    assert data.fingerprint != load_folder(art, 16, 4).fingerprint, "labels are part of the data's identity"
    csv_file.write_text("0.png,even\n")
    with pytest.raises(DatasetError, match="9 image"):
        load_dataset(str(art), 16, 4, labels_file=str(csv_file))
    csv_file.write_text("0.png\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset(str(art), 16, 4, labels_file=str(csv_file))


def test_tensorboard_mirrors_metrics_and_samples(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_tiny(tmp_path / "run", steps=2, train={"tensorboard": True})
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"loss_D", "loss_G", "img_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss_D")] == [1, 2]
    assert events.Tags()["images"] == ["samples"]


def test_identical_checkpoints_are_identical_files(tmp_path: Path) -> None:
    """The same state saved again gives the same bytes: safetensors writes its metadata map in hash
    order (random per map), so a file with two metadata keys came out in either of two orders."""
    import hashlib

    torch.manual_seed(0)
    G, D = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=1e-3)
    G(torch.ones(2, 4)).sum().backward()
    opt.step()
    digests = set()
    for i in range(8):  # two orders at random: 8 saves all alike by chance is under 1 %
        ck = save_checkpoint(
            tmp_path / f"run{i}", TrainConfig(), {}, {"G": G, "D": D}, {"opt": opt}, {"step": 1}
        )
        digests.add(
            tuple(hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(ck.glob("*.safetensors")))
        )
    assert len(digests) == 1


def _tensor_bytes(checkpoint: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(checkpoint.glob("*.safetensors"))}


def test_statistics_reduced_every_few_steps_train_the_same_bits_as_every_step(tmp_path: Path) -> None:
    """The loop keeps ADA's sign statistics and the finite-loss flag on the device and reduces them
    at ADA adjustments, log steps and saves only. Forcing a reduction after every step (log_every 1,
    a checkpoint every step: the old per-step reads) must give the same bytes as reducing rarely,
    with ADA moving p and a resume mid-interval in between."""
    net = {"architecture": "stylegan", "max_channels": 32, "mapping_layers": 2, "conditional": False}
    ada = {"augment": "ada", "ada_interval": 3, "ada_kimg": 1.0, "ada_p": 0.5, "r1_gamma": 1.0, "seed": 5}
    every = train_tiny(tmp_path / "every", steps=9, train={**ada, "checkpoint_every": 1}, **net)
    rare = train_tiny(tmp_path / "rare", steps=9, train={**ada, "log_every": 100}, **net)
    half = train_tiny(tmp_path / "half", steps=5, train={**ada, "log_every": 100}, **net)
    resumed = train_tiny(tmp_path / "half", steps=9, train={**ada, "log_every": 100}, resume=half, **net)
    assert _tensor_bytes(every) == _tensor_bytes(rare) == _tensor_bytes(resumed)
    states = [json.loads((ck / "state.json").read_text())["ada"] for ck in (every, rare, resumed)]
    assert states[0] == states[1] == states[2] and states[0]["p"] != 0.5  # p moved, the same way


def test_the_g_step_leaves_d_frozen_and_its_gradients_untouched(tmp_path: Path) -> None:
    """D's weights get no gradient from G's loss (they would be thrown away): after a whole step D's
    .grad is exactly what its own step computed, and D trains again in the next step."""
    from artctl_trainer.training_loop import Trainer

    cfg = TrainConfig(
        network=NetworkConfig(resolution=16, channels=3, z_dim=8, g_base=8, d_base=8, spectral_norm=True),
        loss="rpgan",
        steps=2,
        batch=4,
        synthetic_size=16,
    )
    trainer = Trainer(cfg, tmp_path / "run")
    seen: list[list[torch.Tensor]] = []
    d_step = trainer.opt_D.step

    def record(*args: object, **kwargs: object) -> object:
        seen.append([p.grad.clone() for p in trainer.D.parameters() if p.grad is not None])
        return d_step(*args, **kwargs)

    trainer.opt_D.step = record  # type: ignore[method-assign]
    for _ in range(2):
        trainer.step()
        after = [p.grad for p in trainer.D.parameters() if p.grad is not None]
        assert len(after) == len(seen[-1]) > 0
        assert all(torch.equal(a, b) for a, b in zip(after, seen[-1])), "G's step added to D's gradients"
        assert all(p.requires_grad for p in trainer.D.parameters())
