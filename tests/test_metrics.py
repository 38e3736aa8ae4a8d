"""FID/KID math against closed forms and definitions, and the bundled Inception network."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from artctl_trainer.inception import FEATURE_DIM, inception_features
from artctl_trainer.metrics import (
    FeatureStats,
    cached_real_features,
    frechet_distance,
    kernel_inception_distance,
)


def test_frechet_distance_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    a, b = FeatureStats(mu1, np.diag(v1), 100), FeatureStats(mu2, np.diag(v2), 100)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_for_full_covariances_matches_an_explicit_matrix_square_root() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = x @ x.T + np.eye(5), y @ y.T + np.eye(5)
    # (S1 S2)^(1/2) has the same trace as (S1^(1/2) S2 S1^(1/2))^(1/2), a symmetric PSD matrix.
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner_w = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(inner_w).sum()
    mu = np.zeros(5)
    a, b = FeatureStats(mu, s1, 9), FeatureStats(mu, s2, 9)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kid_matches_its_definition() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(7, 3))
    d = 3

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1) ** 3)

    m = 7
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    # One subset of the full size is a permutation of the full sets: the statistic is exact.
    kid, std = kernel_inception_distance(x, y, subsets=1, subset_size=m)
    assert kid == pytest.approx(xx + yy - 2 * xy, rel=1e-12) and std == 0.0


def test_inception_features_of_real_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(3, 32, 32, 4), dtype=np.uint8)
    feats = inception_features(images, batch=2)
    assert feats.shape == (3, FEATURE_DIM) and np.isfinite(feats).all() and (feats >= 0).all()
    np.testing.assert_allclose(inception_features(images[:1]), feats[:1], rtol=1e-5, atol=1e-6)
    # Transparent pixels are composited over white: a fully transparent image looks like white.
    clear = np.zeros((1, 32, 32, 4), dtype=np.uint8)
    white = np.full((1, 32, 32, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(inception_features(clear), inception_features(white), rtol=1e-5, atol=1e-6)
    cached = cached_real_features(images, "fp", cache_dir=tmp_path)
    (entry,) = list(tmp_path.glob("*.npy"))
    assert np.array_equal(cached_real_features(images, "fp", tmp_path), cached)
    entry.write_bytes(b"truncated")  # a damaged entry is rebuilt
    np.testing.assert_allclose(cached_real_features(images, "fp", tmp_path), cached, rtol=1e-5, atol=1e-6)


def test_onnx_runtime_inception_matches_torch_and_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import artctl_trainer.inception as metrics

    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    images = np.random.default_rng(5).integers(0, 256, size=(3, 48, 48, 4), dtype=np.uint8)
    monkeypatch.setenv("ARTCTL_INCEPTION", "torch")
    monkeypatch.setattr(metrics, "_RUNNER", None)
    by_torch = inception_features(images)
    assert not list(tmp_path.rglob("*.onnx")), "torch was asked for: nothing exported"
    monkeypatch.delenv("ARTCTL_INCEPTION")
    monkeypatch.setattr(metrics, "_RUNNER", None)
    by_ort = inception_features(images)
    assert metrics._RUNNER is not None and "_onnx_runner" in metrics._RUNNER.__qualname__
    (copy,) = list((tmp_path / ".cache" / "artctl" / "inception").glob("inception-*.onnx"))
    np.testing.assert_allclose(by_ort, by_torch, rtol=0, atol=1e-4)
    # A damaged copy is exported again rather than failing or silently falling back to torch.
    copy.write_bytes(b"not a model")
    monkeypatch.setattr(metrics, "_RUNNER", None)
    np.testing.assert_allclose(inception_features(images[:1]), by_ort[:1], rtol=0, atol=1e-5)
    assert "_onnx_runner" in metrics._RUNNER.__qualname__ and copy.stat().st_size > 1_000_000


def test_generated_labels_follow_the_real_sets_label_frequencies(tmp_path: Path) -> None:
    from PIL import Image

    from artctl_trainer.metrics import MetricsError, label_indices, real_images

    for label, count in (("common", 6), ("rare", 2)):
        (tmp_path / label).mkdir()
        for i in range(count):
            Image.new("RGBA", (16, 16), (40 * i, 90, 200, 255)).save(tmp_path / label / f"{i}.png")
    real = real_images(str(tmp_path), 16, 4)
    assert sorted(real.label_plan) == ["common"] * 6 + ["rare"] * 2
    assert real_images(str(tmp_path), 16, 4).label_plan == real.label_plan, "the plan is fixed"
    assert real.labels_for(5, 8) == [real.label_plan[i % 8] for i in range(5, 13)]
    assert label_indices(["rare", "common"], ["common", "rare"], [0, 1]).tolist() == [1, 0]
    assert label_indices(None, ["common", "rare"], [4, 5]).tolist() == [0, 1]  # no plan: cycled
    assert label_indices(["rare"], [], [0]) is None  # an unconditional model ignores labels
    with pytest.raises(MetricsError, match="labels the model lacks"):
        label_indices(["flags"], ["common", "rare"], [0])


def test_metrics_cli_scores_a_model_against_its_data(
    tiny_run: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """`artctl metrics fid` end to end: same score from the checkpoint and from its export."""
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    from artctl_trainer.datasets import synthetic_shapes

    real = tmp_path / "real"
    real.mkdir()
    for i, img in enumerate(synthetic_shapes(12, 16, 4).images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img, "RGBA").save(real / f"{i}.png")
    env = {**os.environ, "HOME": str(tmp_path)}  # keep the feature cache inside the test

    def run(model: Path, out: Path) -> dict[str, float]:
        cmd = [
            sys.executable,
            "-m",
            "artctl",
            "metrics",
            "fid",
            "--model",
            str(model),
            "--data",
            str(real),
            "--n",
            "12",
            "--out",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "FID" in proc.stdout and "precision" in proc.stdout and "memorised" in proc.stdout
        return json.loads(out.read_text())

    from_ckpt = run(tiny_run, tmp_path / "a.json")
    from_onnx = run(tiny_model, tmp_path / "b.json")
    assert (from_ckpt["generated"], from_ckpt["real"]) == (12, 12) and from_ckpt["fid"] > 0
    assert from_onnx["fid"] == pytest.approx(from_ckpt["fid"], rel=1e-3)
    gate = from_ckpt["gate"]
    assert set(gate) == {
        "precision",
        "recall",
        "density",
        "coverage",
        "memorised",
        "memorised_baseline",
        "compared",
    }
    assert gate["compared"] == 12 and all(0 <= gate[k] <= 1 for k in ("precision", "recall", "coverage"))
    assert list((tmp_path / ".cache" / "artctl" / "inception").glob("*.npy")), "real features were not cached"
