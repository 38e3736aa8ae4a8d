"""Animated GIF / WebP from frames, written atomically.

WebP is written lossless with RGBA: every alpha value and every pixel with alpha > 0 is the
rendered one, but an animated WebP keeps no colour under alpha 0 (libwebp stores and decodes there
whatever compresses best), so compare its frames where they are visible. GIF has a 256-colour
palette per frame and 1-bit transparency, so RGBA frames are composited over white and quantised:
a GIF is for looking at, not for checking hashes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from artctl.fileio import write_bytes_atomic

FORMATS = {".gif": "GIF", ".webp": "WEBP"}


def _pil(frame: npt.NDArray[np.uint8], fmt: str) -> Image.Image:
    channels = frame.shape[2]
    if channels == 1:
        return Image.fromarray(frame[..., 0], "L").convert("RGB")
    if channels == 3:
        return Image.fromarray(frame, "RGB")
    img = Image.fromarray(frame, "RGBA")
    if fmt == "WEBP":
        return img
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, img).convert("RGB")


def animation_format(path: Path) -> str:
    """GIF or WEBP from the file name; anything else is an error."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: write a .gif or .webp animation")
    return fmt


def write_animation(path: Path, frames: npt.NDArray[np.uint8], fps: float = 12.0) -> None:
    """frames [N, H, W, C] -> an endlessly looping animation at `fps`."""
    if not 0 < fps <= 100:
        raise ValueError(f"fps must be in (0, 100], got {fps}")
    fmt = animation_format(path)
    images = [_pil(f, fmt) for f in frames]
    buf = io.BytesIO()
    extra = {"lossless": True, "method": 4} if fmt == "WEBP" else {"optimize": False}
    images[0].save(
        buf,
        format=fmt,
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        **extra,
    )
    write_bytes_atomic(Path(path), buf.getvalue())
