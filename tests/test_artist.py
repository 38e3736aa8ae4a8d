"""The artist's journey through `artctl train`: stop at any moment and resume as if nothing had
happened, never mix two runs in one folder, a recipe that fits the data, and notes that say what
the loader found. Real subprocesses, real signals, real checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from artctl_trainer.config import TrainConfig
from artctl_trainer.presets import PRESETS, auto_preset, preset
from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "network": {"resolution": 16, "channels": 4, "z_dim": 8, "g_base": 8, "d_base": 8},
    "data": "synthetic:shapes",
    "synthetic_size": 64,
    "batch": 4,
    "steps": 300,
    "log_every": 1,
    "sample_every": 100,
    "checkpoint_every": 40,  # saves are frequent, so a signal may land in one
    "threads": 1,
}


def final_state(run: Path) -> dict[str, object]:
    latest = run / "checkpoints" / (run / "latest").read_text().strip()
    state = {
        name: load_file(str(latest / name))
        for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors")
    }
    return {"step": latest.name, "state": json.loads((latest / "state.json").read_text()), **state}


def same_tensors(a: dict[str, object], b: dict[str, object]) -> bool:
    for key in ("G.safetensors", "G_ema.safetensors", "D.safetensors"):
        ta, tb = a[key], b[key]
        assert isinstance(ta, dict) and isinstance(tb, dict)
        if ta.keys() != tb.keys() or any(not ta[k].equal(tb[k]) for k in ta):
            return False
    return a["step"] == b["step"] and a["state"] == b["state"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("straight")
    (folder / "config.json").write_text(json.dumps(TINY))
    done = artctl("train", "--config", str(folder / "config.json"), "--out", str(folder / "run"))
    assert done.returncode == 0, done.stderr
    return final_state(folder / "run")


@pytest.mark.parametrize(("sig", "code", "at_step"), [(signal.SIGINT, 130, 23), (signal.SIGTERM, 143, 81)])
def test_a_signal_mid_run_saves_and_resume_equals_the_uninterrupted_run(
    tmp_path: Path, uninterrupted: dict[str, object], sig: signal.Signals, code: int, at_step: int
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "artctl",
            "train",
            "--config",
            str(tmp_path / "config.json"),
            "--out",
            str(run),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # signal once the run is past `at_step`, wherever it is
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= at_step:
            break
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    stopped = final_state(run)
    assert stopped["step"] != uninterrupted["step"], "the signal came too late to interrupt anything"
    assert f"interrupted ({sig.name})" in err and f"--resume {run}" in err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records[-1]["stopped"] == f"interrupted ({sig.name})"
    resumed = artctl("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert same_tensors(final_state(run), uninterrupted)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == TINY["steps"]


def test_a_fresh_run_never_mixes_with_another_in_one_folder(tmp_path: Path) -> None:
    small = {**TINY, "steps": 3, "checkpoint_every": 0}
    (tmp_path / "config.json").write_text(json.dumps(small))
    args = ("train", "--config", str(tmp_path / "config.json"))
    first = artctl(*args, "--out", str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    again = artctl(*args, "--out", str(tmp_path / "run"))
    assert again.returncode == 1
    (line,) = again.stderr.strip().splitlines()
    assert "already holds a run (checkpoints up to step-000003)" in line
    assert f"--resume {tmp_path / 'run'}" in line and f"--out {tmp_path / 'run-2'} is free" in line
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == before  # nothing touched
    # Without --out, runs are numbered under runs/ (named after the recipe).
    for expected in ("dcgan", "dcgan-2"):
        made = artctl(*args, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert (tmp_path / "runs" / expected / "latest").is_file()
    # A run killed before its first checkpoint: --resume says so instead of a format error.
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / "metrics.jsonl").write_text("")
    dead = artctl("train", "--resume", str(tmp_path / "dead"))
    assert dead.returncode == 1 and "no checkpoint yet" in dead.stderr


def test_old_checkpoints_are_pruned_but_never_latest_or_best(tmp_path: Path) -> None:
    from tests.helpers import train_tiny

    run = tmp_path / "run"
    train_tiny(run, steps=6, train={"checkpoint_every": 1, "keep_checkpoints": 2})
    kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert kept == ["step-000005", "step-000006"]
    (run / "best").write_text("step-000005\n")
    from artctl_trainer.checkpoint import prune_checkpoints

    assert prune_checkpoints(run, 1) == []  # the other one is `best`


def test_the_readme_trains_the_default_model_with_its_own_recipe() -> None:
    recipe = json.loads((REPO / "models" / "emoji64-default" / "train-config.json").read_text())
    readme = (REPO / "README.md").read_text()
    assert "artctl train data/emoji64 --preset emoji64-stylegan-cond" in readme
    shipped = TrainConfig.model_validate(recipe).model_dump()
    from_preset = preset("emoji64-stylegan-cond").model_dump()
    # The preset's channels follow the data (0); the emoji set has transparency, so 0 resolves to the
    # 4 the shipped recipe pins.
    assert (shipped["network"]["channels"], from_preset["network"]["channels"]) == (4, 0)
    from_preset["network"]["channels"] = 4
    differing = {k for k in shipped if shipped[k] != from_preset[k]}
    assert differing == {"data", "threads", "keep_checkpoints"}  # where it is, one pinned thread, pruning


def test_every_preset_is_a_whole_recipe() -> None:
    for name in PRESETS:
        cfg = preset(name)
        # A whole run, not the config's 200-step default; the pixel-art recipes stop at 3,000 steps,
        # where their runs peak (docs/quality.md, "Holding the peak").
        assert cfg.steps >= 3000 and cfg.checkpoint_every and cfg.keep_checkpoints, name
        if cfg.augment == "none":
            assert not name.startswith("small-data"), name
    assert auto_preset("dcgan", 60) == "small-data-dcgan32" and auto_preset("dcgan", 5000) == "dcgan32"
    assert auto_preset("stylegan", 60) == "small-data-stylegan64"


def _art(folder: Path, labels: tuple[str, ...] = ("ink", "wash"), loose: int = 0) -> Path:
    for label in labels:
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGBA", (20, 24), (40 * i, 90, 200 if label == "ink" else 30, 255)).save(
                folder / label / f"{i}.png"
            )
    for i in range(loose):
        Image.new("RGB", (16, 16), (i, i, i)).save(folder / f"loose{i}.jpg")
    (folder / labels[0] / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_small_data_gets_the_small_data_recipe_and_the_loader_says_what_it_found(tmp_path: Path) -> None:
    art = _art(tmp_path / "art")
    dry = artctl("train", str(art), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    cfg = json.loads(dry.stdout)
    assert cfg["augment"] == "diffaug" and cfg["loss"] == "hinge" and cfg["network"]["spectral_norm"]
    assert "preset: small-data-dcgan32" in dry.stderr and "has 13 images" in dry.stderr
    out = artctl("train", str(art), "--out", str(tmp_path / "run"), "--steps", "2", "--resolution", "16")
    assert out.returncode == 0, out.stderr
    assert "skipped 1 unreadable file(s): ink/broken.png (not an image Pillow can read)" in out.stderr
    assert "2 sub-folders (ink, wash); they are ignored unless you train with --conditional" in out.stderr
    loose = _art(tmp_path / "loose", loose=2)
    refused = artctl("train", str(loose), "--conditional", "--out", str(tmp_path / "r2"), "--steps", "1")
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()[-1:]
    assert "2 image(s) sit at the top" in line and "'loose0.jpg'" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--resolution", "48"),
            "network.resolution: resolution must be one of 16, 32, 64, 128, 256 (got 48)",
        ),
        (("--batch", "1"), "batch: Input should be greater than or equal to 2 (got 1)"),
    ],
)
def test_bad_values_are_one_line_without_a_pydantic_dump(args: tuple[str, ...], message: str) -> None:
    out = artctl("train", *args, "--dry-run")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("artctl: error")]
    assert errors == [f"artctl: error: {message}"] and "pydantic" not in out.stderr


def test_data_paths_that_exist_get_the_right_error(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"x")
    (tmp_path / "folder.zip").mkdir()
    for path, message in (
        (tmp_path / "image.png", "is a file, not a folder"),
        (tmp_path / "folder.zip", "is a folder, not a zip"),
    ):
        out = artctl("train", str(path), "--out", str(tmp_path / "r"), "--steps", "1")
        assert out.returncode == 1 and message in out.stderr and "does not exist" not in out.stderr


def test_progress_counts_down_to_the_time_budget(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "steps": 10**6, "minutes": 0.05}))
    out = artctl("train", "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "(time budget)" in out.stderr and "stopped at step" in out.stderr
    assert os.path.isdir(tmp_path / "run" / "checkpoints")


def test_a_signal_during_setup_stops_before_the_first_step_and_a_second_one_at_once(tmp_path: Path) -> None:
    from artctl_trainer.stopping import StopSignal
    from artctl_trainer.training_loop import Trainer

    # A shell's background job inherits SIGINT ignored; this test needs Python's usual handler.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopSignal() as stop:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the data would be loading
            job = Trainer(TrainConfig.model_validate(TINY), tmp_path / "run")
            last = job.run(stop=stop)
            assert last.name == "step-000000" and job.interrupted == "SIGINT"
            with pytest.raises(KeyboardInterrupt):  # the impatient second Ctrl-C
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    finally:
        signal.signal(signal.SIGINT, inherited)
