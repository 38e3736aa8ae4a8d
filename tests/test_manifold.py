"""The quality gate (artctl_trainer.manifold) against its definitions, on features whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from artctl_trainer import manifold
from artctl_trainer.manifold import (
    density_coverage,
    kth_neighbour_radius,
    memorised_share,
    precision_recall,
    quality_gate,
)


def test_kth_neighbour_radius_on_a_line() -> None:
    x = np.array([[0.0], [1.0], [3.0], [6.0]])
    assert kth_neighbour_radius(x, 1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert kth_neighbour_radius(x, 2).tolist() == [3.0, 2.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="more than k"):
        kth_neighbour_radius(x, 4)


def _brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """The papers' definitions, written out with loops over pairs."""

    def radius(points: np.ndarray, i: int) -> float:
        return sorted(float(np.linalg.norm(points[i] - p)) for p in points)[k]  # [0] is itself

    r_real = [radius(real, i) for i in range(len(real))]
    r_fake = [radius(fake, j) for j in range(len(fake))]
    inside = [[float(np.linalg.norm(y - x)) <= r_real[i] for i, x in enumerate(real)] for y in fake]
    precision = np.mean([any(row) for row in inside])
    recall = np.mean([any(np.linalg.norm(x - y) <= r_fake[j] for j, y in enumerate(fake)) for x in real])
    density = sum(sum(row) for row in inside) / (k * len(fake))
    coverage = np.mean([any(inside[j][i] for j in range(len(fake))) for i in range(len(real))])
    return float(precision), float(recall), float(density), float(coverage)


@pytest.mark.parametrize("chunk", [3, 1024])  # blocks smaller than the sets, and one block
def test_the_gate_equals_its_definitions_written_as_loops(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(manifold, "CHUNK", chunk)
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.4, 1.2, size=(40, 6))
    for k in (3, 5):
        want = _brute_force(real, fake, k)
        got = (*precision_recall(real, fake, k), *density_coverage(real, fake, k))
        assert got == pytest.approx(want)


def test_a_collapsed_generator_is_precise_but_recalls_and_covers_little() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    collapsed = real[0] + 0.01 * rng.normal(size=(300, 8))  # every sample near one real image
    precision, recall = precision_recall(real, collapsed)
    density, coverage = density_coverage(real, collapsed)
    assert precision == 1.0 and recall < 0.05 and coverage < 0.05
    assert density >= 1 / 5  # every sample sits in at least one ball of k = 5
    far = rng.normal(50.0, 1.0, size=(300, 8))  # nothing like the reals
    assert precision_recall(real, far) == (0.0, 0.0) and density_coverage(real, far) == (0.0, 0.0)
    twin = rng.normal(size=(300, 8))  # the same distribution
    p, r = precision_recall(real, twin)
    d, c = density_coverage(real, twin)
    assert p > 0.6 and r > 0.6 and 0.6 < d < 1.4 and c > 0.6


def test_copies_of_the_training_set_read_as_memorised_and_honest_samples_do_not() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 16))
    copies = real[rng.integers(0, 400, 800)] + 1e-3 * rng.normal(size=(800, 16))
    fresh = rng.normal(size=(800, 16))
    assert memorised_share(real, copies) == 1.0
    honest = memorised_share(real, fresh)
    report = quality_gate(real, fresh)
    assert honest < 0.6 and abs(honest - report.memorised_baseline) < 0.15
    assert report.memorised == honest and report.compared == 400  # drawn down to the real count
    assert quality_gate(real, copies).memorised == 1.0
