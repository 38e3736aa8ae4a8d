"""FID, KID, the quality gate (artctl_trainer.manifold) and the label plan that makes them fair, on the
Inception features (artctl_trainer.inception).

Images are generated through the seed contract (artctl_trainer.preview for checkpoints, ONNX Runtime for
exported models, composed by the command line), so a model and its export measure the same images.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from artctl.capabilities import Capabilities
from artctl.fileio import publish_mode
from artctl_trainer.inception import INCEPTION_FILE, MetricsError, cache_root, inception_features
from artctl_trainer.manifold import K_DENSITY_COVERAGE, quality_gate

if TYPE_CHECKING:
    from artctl_trainer.datasets import ImageDataset

__all__ = ["MetricsError", "inception_features"]
ProgressFn = Callable[[int, int], None]  # (done, total)
StageProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class FeatureStats:
    mu: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64]
    count: int

    @classmethod
    def of(cls, features: npt.NDArray[np.float64]) -> FeatureStats:
        if len(features) < 2:
            raise MetricsError("need at least 2 images for a covariance")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b, which are
    real and non-negative for covariance matrices; round-off below zero is clipped.
    """
    diff = a.mu - b.mu
    eig = np.linalg.eigvals(a.sigma @ b.sigma)
    tr_sqrt = float(np.sqrt(np.clip(eig.real, 0.0, None)).sum())
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_sqrt)


def kernel_inception_distance(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, mean and std over
    random subsets of equal size (both sets are subsampled without replacement)."""
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise MetricsError("KID needs at least 2 images in each set")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        mmd = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def cached_real_features(
    images: npt.NDArray[np.uint8],
    fingerprint: str,
    cache_dir: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> npt.NDArray[np.float64]:
    """Features of a real set, cached by the data set's fingerprint (the real set rarely changes).

    on_progress(done, total) is called while they are computed (not when they come from the cache).
    """
    cache_dir = Path(cache_dir or cache_root())
    key = hashlib.sha256(f"{fingerprint}:{images.shape}:{INCEPTION_FILE}".encode()).hexdigest()[:32]
    path = cache_dir / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):  # a damaged cache entry is rebuilt, not fatal forever
            path.unlink(missing_ok=True)
    features = inception_features(images, on_progress=on_progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".npy")  # one per process
    publish_mode(fd)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, features)
    os.replace(tmp, path)
    return features


@dataclass(frozen=True)
class RealSet:
    """A real image set to measure against.

    `label_plan` is the set's label names in a fixed shuffled order ([] when unlabelled): generated
    image i is drawn with label `label_plan[i % N]`, so a conditional model is measured on the
    label frequencies it was trained to match, not on a uniform mix that over-weights rare labels.
    """

    images: npt.NDArray[np.uint8]
    fingerprint: str
    label_plan: list[str]

    @classmethod
    def of(cls, data: ImageDataset) -> RealSet:
        """From a trainer Dataset; the plan is a fixed (seed 0) shuffle, so anyone re-derives it."""
        plan: list[str] = []
        if data.label_names and not data.loose:  # loose images have no label
            order = np.random.default_rng(0).permutation(len(data))
            plan = [data.label_names[int(data.labels[i])] for i in order]
        return cls(data.images.permute(0, 2, 3, 1).numpy(), data.fingerprint, plan)

    def labels_for(self, start: int, count: int) -> list[str] | None:
        if not self.label_plan:
            return None
        return [self.label_plan[i % len(self.label_plan)] for i in range(start, start + count)]


class Generate(Protocol):
    def __call__(
        self, start: int, count: int, labels: Sequence[str] | None = None
    ) -> npt.NDArray[np.uint8]: ...


@dataclass(frozen=True)
class QualityReport:
    fid: float
    kid: float
    kid_std: float
    generated: int
    real: int
    # precision/recall, density/coverage, memorisation (artctl_trainer.manifold); empty under 6 images a side
    gate: dict[str, Any] = field(default_factory=dict)


def generated_features(
    generate: Generate, real: RealSet, n: int, batch: int = 64, on_progress: ProgressFn | None = None
) -> npt.NDArray[np.float64]:
    """Features of generated images 0..n-1, labelled after the real set's label plan."""
    chunks = []
    for start in range(0, n, batch):
        count = min(batch, n - start)
        chunks.append(inception_features(generate(start, count, real.labels_for(start, count))))
        if on_progress:
            on_progress(start + count, n)
    return np.concatenate(chunks)


def measure(
    generate: Generate,
    real: RealSet,
    n: int,
    batch: int = 64,
    cache_dir: Path | None = None,
    kid_subsets: int = 50,
    on_progress: StageProgressFn | None = None,
) -> QualityReport:
    """FID and KID of n generated images against a real set.

    on_progress(stage, done, total) reports the two long stages: "real" (the real set's features,
    computed once and cached) and "generated".
    """
    real_feats = cached_real_features(
        real.images,
        real.fingerprint,
        cache_dir,
        None if on_progress is None else partial(on_progress, "real"),
    )
    fake = generated_features(
        generate, real, n, batch, None if on_progress is None else partial(on_progress, "generated")
    )
    kid, kid_std = kernel_inception_distance(
        fake, real_feats, subsets=kid_subsets, subset_size=min(1000, n, len(real_feats))
    )
    fid = frechet_distance(FeatureStats.of(fake), FeatureStats.of(real_feats))
    gate = {}
    if min(len(fake), len(real_feats)) > K_DENSITY_COVERAGE:
        gate = quality_gate(real_feats, fake).to_json()
    return QualityReport(
        fid=fid, kid=kid, kid_std=kid_std, generated=len(fake), real=len(real_feats), gate=gate
    )


def label_indices(
    labels: Sequence[str] | None, names: Sequence[str], seeds: Sequence[int]
) -> npt.NDArray[np.int64] | None:
    """Model label indices: the given names, or seed i -> label i mod L when none are given."""
    if not names:
        return None
    if labels is None:
        return np.array([int(s) % len(names) for s in seeds], dtype=np.int64)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise MetricsError(
            f"the real set has labels the model lacks ({', '.join(unknown[:5])}); "
            f"the model's labels: {', '.join(names)}"
        )
    return np.array([index[name] for name in labels], dtype=np.int64)


def checkpoint_source(model: Path, psi: float | None = None) -> tuple[Generate, Capabilities]:
    """generate(start, count, labels) for a checkpoint's EMA generator: seeds start..start+count-1.

    Labels are names (one per image); without them seed i gets label i mod L. Returns the function
    and the generator's capabilities.
    """
    from artctl_trainer.checkpoint import load_checkpoint
    from artctl_trainer.contract import capabilities
    from artctl_trainer.networks import build_generator
    from artctl_trainer.preview import generate as render

    ck = load_checkpoint(model, require=("G_ema.safetensors",))
    G = build_generator(ck.config.network)
    G.load_state_dict(ck.tensors(ck.generator_file))
    G.eval()
    label_names = list(ck.config.network.label_names) if ck.config.network.num_classes else []

    def from_checkpoint(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
        seeds = list(range(start, start + count))
        indices = label_indices(labels, label_names, seeds)
        return render(G, seeds, indices, psi=1.0 if psi is None else psi)

    return from_checkpoint, capabilities(G, ck.config.network)


def real_images(spec: str, resolution: int, channels: int) -> RealSet:
    """A data set as uint8 NHWC, its fingerprint and its label plan (the trainer's own loader)."""
    from artctl_trainer.datasets import load_dataset

    return RealSet.of(load_dataset(spec, resolution, channels))
