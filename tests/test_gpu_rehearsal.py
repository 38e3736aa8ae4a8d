"""The GPU run's entry point, rehearsed on the CPU EP so that it cannot rot between GPU loans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "bench" / "results" / "cpu-reference.json"


def gpu_serving(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.gpu_serving", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_smoke_run_measures_every_stage(tmp_path: Path) -> None:
    done = gpu_serving("--smoke", "--out", str(tmp_path), "--reference", str(REFERENCE))
    assert done.returncode == 0, done.stderr[-2000:]
    stages = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(stages) == {"preflight", "models", "determinism", "cross", "sweep", "summary"}
    assert all(stages[s]["ok"] for s in stages if s != "summary")
    assert stages["preflight"]["active_providers"][0] == "CPUExecutionProvider"

    cells = stages["determinism"]["cells"]
    # Three models; fp32 and fp16 of the two built ones; canonical and natural shapes of each.
    assert {(c["model"], c["precision"]) for c in cells} == {
        ("default", "fp32"),
        *((m, p) for m in ("dcgan64", "stylegan256") for p in ("fp32", "fp16")),
    }
    assert len(cells) == 10 and all(c["seeds"] == c["alone_seeds"] == 32 for c in cells)
    # The CPU EP at the served level is batch-invariant, padded or not: a mismatch is a bug.
    assert all(c["mismatching_images"] == 0 and c["mixed_pass_mismatches"] == 0 for c in cells)
    assert all(c["mismatches_after_reopen"] == 0 and c["alone_mismatches"] == 0 for c in cells)
    assert all(c["canonical_vs_natural_alone"] == 0 for c in cells if c["exec_batch"])

    own = stages["cross"]["sites"]["own"]["vs_reference"]
    assert own["same_model"] and own["seeds"] == 32
    assert own["latent_mismatches"] == 0  # the seed contract is arithmetic: no machine may differ

    sweep = stages["sweep"]["models"]["dcgan64"]
    rows = sweep["batched"] + sweep["batch-1"]
    assert {(r["format"], r["concurrency"]) for r in sweep["batched"]} == {
        (f, c) for f in ("png", "raw") for c in (1, 4)
    }
    assert all(r["errors"] == 0 and r["requests"] > 0 and 0 < r["inference_busy"] <= 1.0 for r in rows)
    assert {c["format"] for c in sweep["ceiling"]} == {"png", "raw"}
    assert "targets:" in done.stdout and "== determinism" in done.stdout


def test_a_missing_cuda_provider_stops_the_run_before_anything_is_measured(tmp_path: Path) -> None:
    done = gpu_serving("--provider", "cuda", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "preflight failed, nothing measured" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["preflight.json"]
    report = json.loads((tmp_path / "preflight.json").read_text())
    assert report["ok"] is False and "cuda" in report["error"] and "CPUExecutionProvider" in report["error"]


def test_the_reference_hashes_are_the_embedded_default_models() -> None:
    """The committed reference must name the model this checkout embeds, or the GPU box compares
    against the wrong pixels."""
    from artctl.modelcard import file_sha256
    from artctl.models import embedded_default

    reference = json.loads(REFERENCE.read_text())
    model = embedded_default()
    assert model is not None
    assert reference["model_sha256"] == file_sha256(model)
    assert len(reference["pixels"]) == len(reference["latents"]) == 4096


def _labelled_zip(path: Path) -> Path:
    """A small labelled image set as the GPU run brings it: one zip, one sub-folder per label."""
    import zipfile

    from PIL import Image

    from artctl_trainer.datasets import synthetic_shapes

    shapes = synthetic_shapes(24, 16, 4)
    with zipfile.ZipFile(path, "w") as archive:
        for i, img in enumerate(shapes.images.permute(0, 2, 3, 1).numpy()):
            src = path.parent / f"{i}.png"
            Image.fromarray(img, "RGBA").save(src)
            archive.write(src, f"{shapes.label_names[int(shapes.labels[i])]}/{i}.png")
    return path


def test_the_gpu_training_command_brings_back_a_generator_that_scores_and_exports(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "HOME": str(tmp_path),  # the real-feature cache stays inside the test
        "DEVICE": "cpu",
        "MINUTES": "0.05",
        "EXTRA": "--resolution 16 --batch 8",
        "DATA": str(_labelled_zip(tmp_path / "shapes.zip")),
        "OUT": str(tmp_path / "out"),
        "ARTCTL_GPU_WORK": str(tmp_path / "work"),
        "PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", "bench/gpu/train.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    back = sorted((tmp_path / "out").iterdir())
    assert len(back) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in back)
    assert "time budget" in (tmp_path / "out" / "train.log").read_text()

    run = tmp_path / "back"
    unpack = subprocess.run(
        ["bash", "bench/gpu/unpack_train.sh", str(tmp_path / "out"), str(run)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert unpack.returncode == 0 and "G_ema verified" in unpack.stdout, unpack.stderr

    def run_artctl(*args: str) -> subprocess.CompletedProcess[str]:
        return artctl(*args, env=env, timeout=600)

    scored = run_artctl("metrics", "fid", "--model", str(run), "--data", env["DATA"], "--n", "24", "--json")
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["generated"] == 24 and {"precision", "recall", "memorised"} <= set(report["gate"])
    exported = run_artctl("export", str(run), "--out", str(tmp_path / "gpu.onnx"))
    assert exported.returncode == 0 and (tmp_path / "gpu.onnx").is_file(), exported.stderr
    resumed = run_artctl("train", "--resume", str(run), "--steps", "3")  # no D, no optimiser state
    assert resumed.returncode != 0 and "is incomplete: G.safetensors is missing" in resumed.stderr


def test_the_gpu_recipe_is_what_the_guide_says() -> None:
    done = artctl("train", "data/emoji64", "--preset", "emoji64-gpu", "--dry-run", timeout=120)
    assert done.returncode == 0, done.stderr
    cfg = json.loads(done.stdout)
    assert cfg["loss"] == "rpgan" and cfg["r1_gamma"] == cfg["r2_gamma"] > 0  # R3GAN: R1 + R2
    assert cfg["mirror"] is False  # emoji are not mirror-symmetric
    assert (cfg["device"], cfg["precision"], cfg["budget_clock"]) == ("cuda", "bf16", "wall")
    assert cfg["minutes"] <= 8 and cfg["network"]["conditional"] and cfg["fid_n"] == 0
