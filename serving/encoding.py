"""Image payloads: PNG (parallel, off the event loop) or raw HWC bytes, with their pixel hash."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.imaging import encode_png
from artctl.seeds import pixel_sha256

RAW_MIME = "application/x-artctl-raw"


@dataclass(frozen=True)
class Encoded:
    data: bytes
    mime: str
    pixel_sha256: str
    seconds: float


def encode_image(image_hwc: npt.NDArray[np.uint8], fmt: str) -> Encoded:
    """Encode one image; zlib releases the GIL, so a thread pool encodes in parallel."""
    started = time.perf_counter()
    digest = pixel_sha256(image_hwc)
    if fmt == "png":
        data, mime = encode_png(image_hwc), "image/png"
    elif fmt == "raw":
        data, mime = np.ascontiguousarray(image_hwc).tobytes(), RAW_MIME
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return Encoded(data=data, mime=mime, pixel_sha256=digest, seconds=time.perf_counter() - started)
