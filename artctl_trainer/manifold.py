"""A quality gate that still means something with 1,377 real images, where FID is mostly bias.

All on Inception pool3 features, in Euclidean distance, with k-nearest-neighbour balls:
- precision / recall (Kynkäänniemi et al. 2019, k = 3): the share of generated samples inside the
  real manifold (the union of each real's ball to its k-th neighbour), and the share of reals inside
  the generated manifold. Low precision: unrealistic images; low recall: missing modes.
- density / coverage (Naeem et al. 2020, k = 5): density counts how many real balls hold each sample
  (≈ 1 when the sets match, robust to real outliers); coverage is the share of reals whose ball holds
  at least one sample.
- memorisation: the share of samples closer to their nearest real than that real is to its own
  nearest real. Copies of training images score ≈ 1. Beside it, the same share for half of the real
  set against the other half: what an honest sampler of the same distribution scores.
Both sets are compared at equal size (samples drawn down to the real count), as the papers do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Features = npt.NDArray[np.float64]
CHUNK = 1024  # rows of a distance block: 1024 x 10,000 float64 is 80 MB
K_PRECISION_RECALL = 3
K_DENSITY_COVERAGE = 5


def _distances(a: Features, b: Features) -> Features:
    """Euclidean distances between the rows of a and b."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.clip(sq, 0.0, None))


def kth_neighbour_radius(x: Features, k: int) -> Features:
    """Each row's distance to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"need more than k = {k} points, got {len(x)}")
    out = np.empty(len(x))
    for start in range(0, len(x), CHUNK):
        d = _distances(x[start : start + CHUNK], x)
        out[start : start + CHUNK] = np.partition(d, k, axis=1)[:, k]  # column 0 is the row itself
    return out


def balls_holding(points: Features, centres: Features, radii: Features) -> npt.NDArray[np.int64]:
    """For each point, how many balls (centre, radius) contain it."""
    counts = np.zeros(len(points), dtype=np.int64)
    for start in range(0, len(points), CHUNK):
        d = _distances(points[start : start + CHUNK], centres)
        counts[start : start + CHUNK] = (d <= radii[None, :]).sum(1)
    return counts


def nearest(points: Features, others: Features) -> tuple[Features, npt.NDArray[np.int64]]:
    """Each point's distance to its nearest row of `others`, and that row's index."""
    dist, index = np.empty(len(points)), np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), CHUNK):
        d = _distances(points[start : start + CHUNK], others)
        index[start : start + CHUNK] = d.argmin(1)
        dist[start : start + CHUNK] = d[np.arange(len(d)), index[start : start + CHUNK]]
    return dist, index


def precision_recall(real: Features, fake: Features, k: int = K_PRECISION_RECALL) -> tuple[float, float]:
    precision = (balls_holding(fake, real, kth_neighbour_radius(real, k)) > 0).mean()
    recall = (balls_holding(real, fake, kth_neighbour_radius(fake, k)) > 0).mean()
    return float(precision), float(recall)


def density_coverage(real: Features, fake: Features, k: int = K_DENSITY_COVERAGE) -> tuple[float, float]:
    radii = kth_neighbour_radius(real, k)
    density = balls_holding(fake, real, radii).sum() / (k * len(fake))
    to_fake, _ = nearest(real, fake)
    coverage = (to_fake <= radii).mean()
    return float(density), float(coverage)


def memorised_share(real: Features, fake: Features) -> float:
    """Share of samples nearer their nearest real than that real's own nearest real neighbour."""
    own = kth_neighbour_radius(real, 1)
    dist, index = nearest(fake, real)
    return float((dist < own[index]).mean())


@dataclass(frozen=True)
class GateReport:
    precision: float
    recall: float
    density: float
    coverage: float
    memorised: float
    memorised_baseline: float  # half the reals against the other half: what no copying scores
    compared: int  # images per side in precision/recall and density/coverage

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def quality_gate(real: Features, fake: Features, seed: int = 0) -> GateReport:
    """The gate over two feature sets; the larger is drawn down (without replacement, seeded)."""
    rng = np.random.default_rng(seed)
    m = min(len(real), len(fake))
    r = real[rng.choice(len(real), m, replace=False)] if len(real) > m else real
    f = fake[rng.choice(len(fake), m, replace=False)] if len(fake) > m else fake
    precision, recall = precision_recall(r, f)
    density, coverage = density_coverage(r, f)
    halves = rng.permutation(len(real))
    a, b = real[halves[: len(real) // 2]], real[halves[len(real) // 2 :]]
    return GateReport(
        precision=precision,
        recall=recall,
        density=density,
        coverage=coverage,
        memorised=memorised_share(real, fake),
        memorised_baseline=memorised_share(a, b),
        compared=m,
    )
