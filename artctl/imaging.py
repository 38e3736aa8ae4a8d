"""Pixel helpers shared by mint, the server and the trainer's previews: PNG bytes and grids.

PNG bytes depend on the encoder (Pillow/zlib version, level); pixels do not. That is why artctl
identifies images by `pixel_sha256` and treats the PNG file hash as a property of one encoding.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

PNG_COMPRESS_LEVEL = 1  # fastest zlib level: encoding, not inference, bounds serving throughput
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def encode_png(image_hwc: npt.NDArray[np.uint8], compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode HWC uint8 (1, 3 or 4 channels) as PNG, with no timestamps or other metadata."""
    if image_hwc.dtype != np.uint8 or image_hwc.ndim != 3 or image_hwc.shape[2] not in MODES:
        raise ValueError(f"need uint8 [H, W, 1|3|4], got {image_hwc.dtype} {image_hwc.shape}")
    channels = image_hwc.shape[2]
    pixels = image_hwc[..., 0] if channels == 1 else image_hwc
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), MODES[channels]).save(
        buf, format="PNG", compress_level=compress_level
    )
    return buf.getvalue()


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """PNG bytes back to HWC uint8, keeping the file's channel count (L, RGB or RGBA)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.mode else "RGB")
        arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def image_grid(images_nhwc: npt.NDArray[np.uint8], cols: int | None = None, pad: int = 2) -> Image.Image:
    """Tile images into one picture; RGBA images are shown over a light checkerboard."""
    n, h, w, c = images_nhwc.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), (40, 40, 40))
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 235, 205).astype(np.uint8)
    backdrop = Image.fromarray(np.stack([checker] * 3, axis=-1), "RGB")
    for i in range(n):
        tile_arr = images_nhwc[i]
        if c == 4:
            tile = backdrop.copy()
            tile.paste(Image.fromarray(tile_arr, "RGBA"), (0, 0), Image.fromarray(tile_arr[..., 3], "L"))
        elif c == 1:
            tile = Image.fromarray(tile_arr[..., 0], "L").convert("RGB")
        else:
            tile = Image.fromarray(tile_arr, "RGB")
        r, col = divmod(i, cols)
        sheet.paste(tile, (pad + col * (w + pad), pad + r * (h + pad)))
    return sheet
