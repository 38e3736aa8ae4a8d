"""How an image leaves artctl: an integer nearest-neighbour upscale, as PNG or as SVG rects.

Pixel art (32 x 32 Nouns-style) is shown large, and any smoothing blurs it. So the model and its
ONNX graph always render NATIVE pixels, `pixel_sha256` is always of those, and only the delivered
file is upscaled, by whole numbers and nearest neighbour: every native pixel becomes a `scale` x
`scale` square. Both encodings are pure functions of (native pixels, scale), so `artctl verify`
rebuilds a drop's file bytes from re-rendered pixels and compares.

SVG: one `<rect>` per run of same-colour pixels in a row, merged downwards with identical runs in
the rows below; `shape-rendering="crispEdges"`; width, height and viewBox are the delivered size
(native * scale) and rect coordinates are in those units. Fully transparent pixels (alpha 0) are
left out (their RGB is not kept); partial alpha (1..254) is `fill-opacity` with 3 decimals, which
maps back to the exact alpha byte (round(opacity * 255)); the fill is the pixel's straight RGB.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.imaging import decode_png, encode_png

IMAGE_FORMATS = ("png", "svg")
MIME_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
MAX_SCALE = 16  # 32 px -> 512 px, 256 px -> 4096 px: beyond this a viewer should zoom, not the file
SVG_NS = "http://www.w3.org/2000/svg"

Pixels = npt.NDArray[np.uint8]


def check_scale(scale: int) -> int:
    """The scale itself, or ValueError naming the allowed range."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be a whole number in 1..{MAX_SCALE}, got {scale!r}")
    return scale


def upscale(pixels: Pixels, scale: int) -> Pixels:
    """Every pixel as a `scale` x `scale` square (nearest neighbour, exact, no resampling)."""
    check_scale(scale)
    if scale == 1:
        return pixels
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def as_rgba(pixels: Pixels) -> Pixels:
    """HWC with 1, 3 or 4 channels as RGBA (grey repeated, opaque where there is no alpha)."""
    h, w, c = pixels.shape
    if c == 4:
        return pixels
    rgb = np.repeat(pixels, 3, axis=2) if c == 1 else pixels
    return np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)


def visible(pixels: Pixels) -> Pixels:
    """The pixels as an SVG keeps them: RGB of fully transparent pixels set to 0."""
    if pixels.shape[2] != 4:
        return pixels
    out = pixels.copy()
    out[out[..., 3] == 0] = 0
    return out


def _hex(rgb: bytes) -> str:
    text = rgb.hex()
    if text[0::2] == text[1::2]:  # #aabbcc -> #abc
        return "#" + text[0::2]
    return "#" + text


def _runs(codes: npt.NDArray[np.uint32], row: Pixels) -> list[tuple[int, int, bytes]]:
    """(x, length, RGBA bytes) of each run of one colour in a row (`codes`: its pixels as one
    uint32 each), transparent pixels skipped."""
    starts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()]
    ends = [*starts[1:], len(codes)]
    return [(a, b - a, row[a].tobytes()) for a, b in zip(starts, ends) if row[a, 3] != 0]


@dataclass
class _Rect:
    x: int
    y: int
    width: int
    height: int
    rgba: bytes


def encode_svg(pixels: Pixels, scale: int = 1) -> bytes:
    """The image as crisp SVG rects at `scale` (see the module docstring); same pixels, same bytes."""
    check_scale(scale)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"need uint8 [H, W, 1|3|4], got {pixels.dtype} {pixels.shape}")
    rgba = as_rgba(pixels)
    h, w, _ = rgba.shape
    codes = np.ascontiguousarray(rgba).view(np.uint32)[..., 0]
    rects: list[_Rect] = []  # in order of their top row, then x
    above: dict[tuple[int, int, bytes], _Rect] = {}
    for y in range(h):
        here: dict[tuple[int, int, bytes], _Rect] = {}
        for run in _runs(codes[y], rgba[y]):
            rect = above.get(run)  # the same run just above: grow that rect down a row
            if rect is None:
                rect = _Rect(run[0], y, run[1], 0, run[2])
                rects.append(rect)
            rect.height += 1
            here[run] = rect
        above = here
    W, H = w * scale, h * scale
    lines = [
        f'<svg xmlns="{SVG_NS}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" shape-rendering="crispEdges">'
    ]
    for r in rects:
        alpha = r.rgba[3]
        opacity = "" if alpha == 255 else f' fill-opacity="{alpha / 255:.3f}"'
        lines.append(
            f'<rect x="{r.x * scale}" y="{r.y * scale}" width="{r.width * scale}" '
            f'height="{r.height * scale}" fill="{_hex(r.rgba[:3])}"{opacity}/>'
        )
    lines.append("</svg>")
    return ("\n".join(lines) + "\n").encode("ascii")


_INT = re.compile(r"^(0|[1-9][0-9]*)$")
_FILL = re.compile(r"^#([0-9a-f]{3}|[0-9a-f]{6})$")


def _int(el: ET.Element, name: str) -> int:
    text = el.get(name, "")
    if not _INT.match(text):
        raise ValueError(f"SVG: {name}={text[:16]!r} is not a whole number")
    return int(text)


def decode_svg(data: bytes, scale: int = 1) -> Pixels:
    """An SVG written by encode_svg back to its native RGBA pixels (ValueError for anything else)."""
    check_scale(scale)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not a readable SVG ({exc})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise ValueError("not an SVG document")
    W, H = _int(root, "width"), _int(root, "height")
    if W % scale or H % scale or root.get("viewBox") != f"0 0 {W} {H}":
        raise ValueError(f"SVG: size {W} x {H} is not a whole {scale}x upscale with a matching viewBox")
    out = np.zeros((H // scale, W // scale, 4), np.uint8)
    for el in root:
        if el.tag != f"{{{SVG_NS}}}rect":
            raise ValueError(f"SVG: unexpected element {el.tag}")
        x, y, w, h = (_int(el, k) for k in ("x", "y", "width", "height"))
        if any(v % scale for v in (x, y, w, h)) or x + w > W or y + h > H:
            raise ValueError("SVG: a rect is not on the pixel grid")
        fill = _FILL.match(el.get("fill", ""))
        if fill is None:
            raise ValueError(f"SVG: fill {el.get('fill', '')[:16]!r} is not #rgb or #rrggbb")
        digits = fill.group(1)
        digits = "".join(d * 2 for d in digits) if len(digits) == 3 else digits
        opacity = el.get("fill-opacity")
        alpha = 255 if opacity is None else round(float(opacity) * 255)
        colour = [*bytes.fromhex(digits), alpha]
        out[y // scale : (y + h) // scale, x // scale : (x + w) // scale] = colour
    return out


def encode_file(pixels: Pixels, scale: int = 1, fmt: str = "png") -> bytes:
    """The delivered file of native `pixels`: PNG of the upscale, or SVG rects at the scale."""
    if fmt == "png":
        return encode_png(upscale(pixels, scale))
    if fmt == "svg":
        return encode_svg(pixels, scale)
    raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")


def native_pixels(data: bytes, scale: int = 1, fmt: str = "png", channels: int | None = None) -> Pixels:
    """A delivered file back to native pixels; ValueError unless it is an exact `scale`x upscale.

    An SVG decodes to RGBA (as_rgba), or to `channels` when given: 3 drops alpha, 1 keeps red.
    """
    check_scale(scale)
    if fmt == "png":
        big = decode_png(data)
        h, w, _ = big.shape
        if h % scale or w % scale:
            raise ValueError(f"{w} x {h} is not a whole {scale}x upscale")
        small = big[::scale, ::scale]
        if scale > 1 and not np.array_equal(upscale(small, scale), big):
            raise ValueError(f"not a nearest-neighbour {scale}x upscale (resampled or edited)")
        return np.ascontiguousarray(small)
    if fmt == "svg":
        rgba = decode_svg(data, scale)
        if channels in (None, 4):
            return rgba
        return np.ascontiguousarray(rgba[..., :3] if channels == 3 else rgba[..., :1])
    raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
