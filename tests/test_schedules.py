"""The schedules of a run: the linear learning-rate decay (TrainConfig.lr_decay_from), the rates each
step trains at and resuming inside the decay, and G_ema's ramp (TrainConfig.ema_ramp)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from artctl_trainer.config import TrainConfig
from artctl_trainer.training_loop import Trainer, training_loop
from tests.helpers import tiny_config


def _config(steps: int, decay_from: int) -> TrainConfig:
    train = {"loss": "hinge", "lr_g": 1e-3, "lr_d": 4e-3, "lr_decay_from": decay_from, "batch": 4}
    train |= {"synthetic_size": 16, "sample_every": 100, "log_every": 100}
    return tiny_config(steps, train, channels=3, z_dim=8, spectral_norm=True)


def test_both_rates_fall_linearly_to_zero_at_the_last_step(tmp_path: Path) -> None:
    """Steps before lr_decay_from train at the base rates; from there each step's rate is the base
    times (steps - step) / (steps - lr_decay_from), so the last step trains at 1 / that span."""
    trainer = Trainer(_config(6, 2), tmp_path / "run")
    used: dict[str, list[float]] = {"G": [], "D": []}
    for name, opt in (("G", trainer.opt_G), ("D", trainer.opt_D)):
        original = opt.step

        def record(*args: object, _opt=opt, _name=name, _step=original, **kwargs: object) -> object:
            used[_name].append(_opt.param_groups[0]["lr"])
            return _step(*args, **kwargs)

        opt.step = record  # type: ignore[method-assign]
    for _ in range(6):
        trainer.step()
    shares = [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert used["G"] == pytest.approx([1e-3 * s for s in shares], rel=1e-12)
    assert used["D"] == pytest.approx([4e-3 * s for s in shares], rel=1e-12)
    assert TrainConfig(steps=6).lr_scale(5) == 1.0, "0 (the default) keeps the rates constant"


def test_resuming_inside_the_decay_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = training_loop(_config(6, 2), tmp_path / "straight")
    interrupted = Trainer(_config(6, 2), tmp_path / "split")  # as a signal or a budget stops a run
    for _ in range(4):
        interrupted.step()
    interrupted.save()
    resumed = training_loop(_config(6, 2), tmp_path / "split", resume=tmp_path / "split")
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors", "optim.safetensors"):
        a, b = load_file(str(straight / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resuming in the decay"


def test_a_decay_that_starts_after_the_run_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"lr_decay_from \(6\) must be below steps \(6\)"):
        _config(6, 6)


@pytest.mark.parametrize("ramp", [10.0, 3.0])
def test_g_ema_follows_its_ramp(tmp_path: Path, ramp: float) -> None:
    """After the step that makes the step count s, G_ema = d * G_ema + (1 - d) * G with
    d = min(ema_decay, (1 + s) / (ema_ramp + s)): the ramp sets how far back G_ema averages (10, the
    default, is the ramp every earlier run trained with). At ramp 3 the decay is ema_decay from
    step 4 on, so both sides of the min are exercised."""
    trainer = Trainer(_config(5, 0).model_copy(update={"ema_ramp": ramp, "ema_decay": 0.7}), tmp_path / "r")
    expected = [p.detach().clone() for p in trainer.G_ema.parameters()]
    for step in range(1, 6):
        trainer.step()
        decay = min(0.7, (1 + step) / (ramp + step))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, trainer.G.parameters())]
        got = list(trainer.G_ema.parameters())
        assert all(torch.allclose(g, e, rtol=1e-5, atol=1e-7) for g, e in zip(got, expected)), step


def test_a_resumed_run_trains_at_the_rates_its_config_asks_for(tmp_path: Path) -> None:
    """`--resume RUN --lr-d X` trains D at X from there on, and keeps the optimisers' moments.

    The rates and betas used to come back from the checkpoint, so a changed rate was silently ignored."""
    first = training_loop(_config(2, 0), tmp_path / "run")
    changed = _config(4, 0).model_copy(update={"lr_d": 1e-4, "beta2": 0.9})
    trainer = Trainer(changed, tmp_path / "run")
    trainer.resume(first)
    group = trainer.opt_D.param_groups[0]
    assert (group["lr"], group["betas"]) == (1e-4, (0.5, 0.9))
    assert trainer.opt_G.param_groups[0]["lr"] == 1e-3, "G's rate is the config's, unchanged"
    saved = load_file(str(first / "optim.safetensors"))
    state = trainer.opt_D.state_dict()["state"]
    assert state, "the moments came back"
    for index, slots in state.items():
        assert torch.equal(slots["exp_avg"], saved[f"opt_D.{index}.exp_avg"])
        assert torch.equal(slots["exp_avg_sq"], saved[f"opt_D.{index}.exp_avg_sq"])
