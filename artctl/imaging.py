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


def display_scale(size: int, at_least: int = 96) -> int:
    """The integer zoom that shows a `size`-pixel image at `at_least` pixels or more (1 when it is)."""
    return max(1, -(-at_least // size))


def tile(image_hwc: npt.NDArray[np.uint8], scale: int = 1) -> Image.Image:
    """One image as RGB for display: RGBA over a light checkerboard, zoomed by `scale` (nearest
    neighbour, so every pixel stays a crisp square)."""
    h, w, c = image_hwc.shape
    if c == 4:
        yy, xx = np.mgrid[0:h, 0:w]
        checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 235, 205).astype(np.uint8)
        out = Image.fromarray(np.stack([checker] * 3, axis=-1), "RGB")
        out.paste(Image.fromarray(image_hwc, "RGBA"), (0, 0), Image.fromarray(image_hwc[..., 3], "L"))
    elif c == 1:
        out = Image.fromarray(image_hwc[..., 0], "L").convert("RGB")
    else:
        out = Image.fromarray(image_hwc, "RGB")
    return out if scale == 1 else out.resize((w * scale, h * scale), Image.Resampling.NEAREST)


def image_grid(
    images_nhwc: npt.NDArray[np.uint8], cols: int | None = None, pad: int = 2, scale: int = 1
) -> Image.Image:
    """Tile images into one picture; RGBA images are shown over a light checkerboard."""
    n, h, w, _ = images_nhwc.shape
    h, w = h * scale, w * scale
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), (40, 40, 40))
    for i in range(n):
        r, col = divmod(i, cols)
        sheet.paste(tile(images_nhwc[i], scale), (pad + col * (w + pad), pad + r * (h + pad)))
    return sheet


# A 3x5 bitmap font for the digits of token ids: drawn pixel by pixel, so a contact sheet
# (whose bytes `artctl verify` rebuilds) looks the same with every Pillow and FreeType.
GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
}


def draw_digits(sheet: Image.Image, text: str, x: int, y: int, size: int = 2, fill: int = 230) -> None:
    """Write `text` (digits) at (x, y), each font pixel a `size` x `size` square."""
    pixels = np.array(sheet)
    for k, char in enumerate(text):
        bits = np.array([int(b) for b in GLYPHS[char]], dtype=bool).reshape(5, 3)
        block = np.kron(bits, np.ones((size, size), dtype=bool))
        left = x + k * 4 * size
        region = pixels[y : y + block.shape[0], left : left + block.shape[1]]
        region[block[: region.shape[0], : region.shape[1]]] = fill
    sheet.paste(Image.fromarray(pixels))


def contact_sheet(images_nhwc: npt.NDArray[np.uint8], ids: list[int], cols: int = 10) -> Image.Image:
    """Tiles of at least 96 px, each with its token id under it."""
    n, h, w, _ = images_nhwc.shape
    scale = display_scale(max(h, w))
    cols = min(cols, n)
    rows = -(-n // cols)
    tw, th, pad, caption = w * scale, h * scale, 4, 14
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, rows * (th + caption + pad) + pad), (32, 32, 32))
    for i in range(n):
        r, c = divmod(i, cols)
        x, y = pad + c * (tw + pad), pad + r * (th + caption + pad)
        sheet.paste(tile(images_nhwc[i], scale), (x, y))
        draw_digits(sheet, str(ids[i]), x, y + th + 2)
    return sheet
