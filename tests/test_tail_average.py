"""G_ema's tail average (TrainConfig.ema_average_from / ema_average_every, artctl_trainer.tail_average):
the mean of the right snapshots, bit-identical across a resume, and the generator that export and
metrics read from a checkpoint that holds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from artctl.seeds import latents
from artctl_exporter.export import export_checkpoint
from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import TrainConfig
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.networks import build_generator
from artctl_trainer.preview import generate
from artctl_trainer.training_loop import Trainer, training_loop
from tests.helpers import tiny_config

FILES = ("G.safetensors", "G_ema.safetensors", "G_avg.safetensors", "D.safetensors", "optim.safetensors")


def _config(steps: int = 7, start: int = 3, every: int = 2, **train: object) -> TrainConfig:
    options = {"loss": "hinge", "batch": 4, "synthetic_size": 16, "sample_every": 100, "log_every": 100}
    # Rates high enough that seven steps move the tiny G's pixels (at 2e-4 they stay within 1 of grey).
    options |= {"lr_g": 2e-2, "lr_d": 2e-2, "ema_ramp": 3.0}
    options |= {"ema_average_from": start, "ema_average_every": every, **train}
    return tiny_config(steps, options, channels=3, z_dim=8)


def test_the_average_is_the_uniform_mean_of_g_ema_at_its_snapshot_steps(tmp_path: Path) -> None:
    """From step 3, every 2 steps: G_ema after steps 3, 5 and 7 joins the mean, weights and BatchNorm
    statistics alike; integer buffers are the last snapshot's."""
    trainer = Trainer(_config(), tmp_path / "run")
    snapshots = []
    for step in range(1, 8):
        trainer.step()
        assert trainer.average.count == len([s for s in (3, 5, 7) if s <= step])
        if step in (3, 5, 7):
            snapshots.append({k: v.detach().clone() for k, v in trainer.G_ema.state_dict().items()})
    mean = trainer.average.module.state_dict()
    floats = [k for k in mean if mean[k].is_floating_point()]
    assert any("running_var" in k for k in floats), "the tiny G has BatchNorm statistics to average"
    for key, value in mean.items():
        if value.is_floating_point():
            expected = torch.stack([s[key] for s in snapshots]).mean(0)
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(value, snapshots[-1][key]), key
    live = trainer.G_ema.state_dict()
    assert any(not torch.equal(mean[k], live[k]) for k in floats), "the mean is not G_ema itself"
    assert trainer.G_out is trainer.average.module


def test_off_by_default_and_before_its_start_no_average_is_written(tmp_path: Path) -> None:
    plain = training_loop(_config(start=0), tmp_path / "plain")
    early = training_loop(_config(steps=2, start=3), tmp_path / "early")
    for path in (plain, early):
        assert not (path / "G_avg.safetensors").exists()
        assert load_checkpoint(path).generator_file == "G_ema.safetensors"
    assert TrainConfig().ema_average_from == 0
    with pytest.raises(ValidationError, match="ema_average_every"):
        _config(every=0)


def test_resuming_inside_the_average_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Stopped after step 4 (one snapshot taken, the next due at 5), the resumed run's G_avg, G_ema,
    G, D and optimisers equal a run that never stopped, in every value."""
    straight = training_loop(_config(), tmp_path / "straight")
    split = Trainer(_config(), tmp_path / "split")
    for _ in range(4):
        split.step()
    split.save()
    resumed = training_loop(_config(), tmp_path / "split", resume=tmp_path / "split")
    for name in FILES:
        a, b = load_file(str(straight / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resuming"


def test_export_and_metrics_read_the_average(tmp_path: Path) -> None:
    """The exported graph draws the tail average's pixels (its card says so), and so does scoring."""
    ck = load_checkpoint(training_loop(_config(), tmp_path / "run"))
    assert ck.generator_file == "G_avg.safetensors"
    rendered = {}
    for name in ("G_avg", "G_ema"):
        G = build_generator(ck.config.network)
        G.load_state_dict(ck.tensors(f"{name}.safetensors"))
        rendered[name] = generate(G.eval(), range(16))
    assert np.abs(rendered["G_avg"].astype(int) - rendered["G_ema"].astype(int)).max() > 1
    result = export_checkpoint(ck.path, tmp_path / "avg.onnx", parity_seeds=8, palette="none")
    assert result.card.extra["weights"] == "G_avg"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    onnx_images = session.run(["image"], {"z": latents(np.arange(16, dtype=np.uint64), 8)})[0]
    assert np.abs(onnx_images.astype(int) - rendered["G_avg"].astype(int)).max() <= 1
    scored, _ = checkpoint_source(ck.path)
    assert np.array_equal(scored(0, 16), rendered["G_avg"])
