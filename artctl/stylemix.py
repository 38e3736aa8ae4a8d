"""Style mixing in w space: which layers take the style seed's w, and the grid of the StyleGAN papers.

A StyleGAN synthesis network reads one w per layer (`num_ws` of them, the 4x4 block first). Giving
layers lo..hi the style seed's w and the rest the content seed's w transfers the style seed's
coarse (pose, shape), middle (features) or fine (colour, texture) traits. The named groups split
the layer indices into thirds, the first and second thirds rounded up:
coarse = [0, a), middle = [a, b), fine = [b, num_ws) with a = ceil(num_ws / 3),
b = ceil(2 * num_ws / 3). For num_ws = 12 (64 px): coarse 0-3, middle 4-7, fine 8-11.

Numpy only, so the CLI, the server and tests share one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

GROUPS = ("coarse", "middle", "fine")


class LayerRangeError(ValueError):
    """A layer range the model cannot take."""


@dataclass(frozen=True)
class LayerRange:
    """Inclusive layer indices lo..hi that take the style seed's w."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"


def group_range(group: str, num_ws: int) -> LayerRange:
    """The named third (coarse, middle or fine) of a model with num_ws layers."""
    if num_ws < 3:
        raise LayerRangeError(f"the model has {num_ws} layers; named groups need at least 3")
    a, b = -(-num_ws // 3), -(-2 * num_ws // 3)
    bounds = {"coarse": (0, a - 1), "middle": (a, b - 1), "fine": (b, num_ws - 1)}
    if group not in bounds:
        raise LayerRangeError(f"unknown layer group {group!r}; choose coarse, middle, fine or i-j")
    return LayerRange(*bounds[group])


def check_range(lo: int, hi: int, num_ws: int) -> LayerRange:
    """Refuse anything but 0 <= lo <= hi < num_ws."""
    if not 0 <= lo <= hi < num_ws:
        raise LayerRangeError(f"layer range {lo}-{hi} is invalid: need 0 <= i <= j < {num_ws} (num_ws)")
    return LayerRange(lo, hi)


def parse_layers(spec: str, num_ws: int) -> LayerRange:
    """`coarse`, `middle`, `fine`, `i-j` (inclusive) or a single index `i`."""
    text = spec.strip().lower()
    if text in GROUPS:
        return group_range(text, num_ws)
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if match is None:
        raise LayerRangeError(f"cannot read layers {spec!r}; use coarse, middle, fine, i-j or i")
    lo = int(match.group(1))
    hi = int(match.group(2)) if match.group(2) is not None else lo
    return check_range(lo, hi, num_ws)


def mix_ws(
    content: npt.NDArray[np.float32], style: npt.NDArray[np.float32], layers: LayerRange
) -> npt.NDArray[np.float32]:
    """ws [B, num_ws, w_dim]: content's, with style's on layers lo..hi. Copies, so equal inputs
    give bit-identical output (mixing a seed with itself is its plain render)."""
    if content.shape != style.shape or content.ndim != 3:
        raise ValueError(
            f"content and style ws must be [B, num_ws, w_dim] alike: {content.shape}, {style.shape}"
        )
    check_range(layers.lo, layers.hi, content.shape[1])
    out = np.array(content, dtype=np.float32, copy=True)
    out[:, layers.lo : layers.hi + 1] = style[:, layers.lo : layers.hi + 1]
    return out


def cut_truncation(
    truncated: npt.NDArray[np.float32], free: npt.NDArray[np.float32], cutoff: int
) -> npt.NDArray[np.float32]:
    """ws with psi applied to the first `cutoff` layers only (StyleGAN's truncation cutoff): the
    truncated ws there, the untruncated (psi 1) ws of the same latents on the layers after."""
    num_ws = truncated.shape[1]
    if not 1 <= cutoff <= num_ws:
        raise LayerRangeError(f"truncation cutoff {cutoff} is outside 1..{num_ws} (num_ws)")
    if cutoff == num_ws:
        return np.array(truncated, dtype=np.float32, copy=True)
    return mix_ws(truncated, free, LayerRange(cutoff, num_ws - 1))


def pair_seeds(content: list[int], style: list[int]) -> tuple[list[int], list[int]]:
    """Pairs (content[i], style[i]); a single seed on either side is paired with every other."""
    if not content or not style:
        raise ValueError("give at least one content seed and one style seed")
    if len(content) == len(style):
        return list(content), list(style)
    if len(content) == 1:
        return list(content) * len(style), list(style)
    if len(style) == 1:
        return list(content), list(style) * len(content)
    raise ValueError(
        f"{len(content)} content seeds and {len(style)} style seeds: give equal counts, or one on a side"
    )


def grid_pairs(content: list[int], style: list[int]) -> tuple[list[int], list[int]]:
    """Every (content row, style column) pair, row-major: the inner cells of a mixing grid."""
    return [c for c in content for _ in style], [s for _ in content for s in style]


def mixing_grid(
    content_images: npt.NDArray[np.uint8],
    style_images: npt.NDArray[np.uint8],
    mixed: npt.NDArray[np.uint8],
) -> npt.NDArray[np.uint8]:
    """The StyleGAN-paper layout: style seeds' plain renders along the top, content seeds' down the
    left, mixes in the cells (row = content, column = style); the corner is left blank.

    Returns [rows + 1 cells, cols + 1 cells] as one HWC uint8 image, no padding, so pixels are the
    renders' own.
    """
    rows, cols = len(content_images), len(style_images)
    if mixed.shape[0] != rows * cols:
        raise ValueError(f"need {rows * cols} mixed images for a {rows}x{cols} grid, got {mixed.shape[0]}")
    _, h, w, c = mixed.shape
    sheet = np.zeros(((rows + 1) * h, (cols + 1) * w, c), dtype=np.uint8)
    if c == 4:
        sheet[..., 3] = 0  # transparent corner
    for j in range(cols):
        sheet[0:h, (j + 1) * w : (j + 2) * w] = style_images[j]
    for i in range(rows):
        sheet[(i + 1) * h : (i + 2) * h, 0:w] = content_images[i]
        for j in range(cols):
            sheet[(i + 1) * h : (i + 2) * h, (j + 1) * w : (j + 2) * w] = mixed[i * cols + j]
    return sheet
