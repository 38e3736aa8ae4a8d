"""Training through the palette snap: D judges the palette-exact pixels that export will draw.

The exporter appends artctl-palette-v1's snap to the graph (nearest colour over the uint8 values,
ties to the lower index). A generator trained with `output = "snap"` has the same snap applied to its
samples before D sees them, with the straight-through gradient of VQ-VAE: G learns where to put a
pixel so that it lands on the right colour, rather than being judged on colours it will never show.

The snap is exact and fast: a table of the nearest colour of every RGB value (16 MiB, built once per
palette), looked up after the exporter's own quantization. RGBA palettes search the colours directly.
"""

from __future__ import annotations

import functools

import torch

from artctl.palette import palette_array
from artctl_trainer.preview import quantize


@functools.cache
def _nearest_table(palette: tuple[str, ...]) -> torch.Tensor:
    """uint8 [256**3]: the palette index nearest to each RGB value (first minimum: the lower index).

    Cube by cube (16 values a side), only the colours that can be nearest somewhere in the cube are
    searched: those whose least distance to the cube is at most the smallest greatest distance.
    """
    colours = torch.from_numpy(palette_array(list(palette))).to(torch.int32)  # [K, 3]
    side = 16
    offsets = torch.stack(torch.meshgrid(*[torch.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    table = torch.empty((256, 256, 256), dtype=torch.uint8)
    for corner in torch.cartesian_prod(*[torch.arange(0, 256, side)] * 3):
        lo, hi = corner.to(torch.int32), corner.to(torch.int32) + side - 1
        below, above = (lo - colours).clamp(min=0), (colours - hi).clamp(min=0)
        least = (below + above).square().sum(1)
        greatest = torch.maximum(colours - lo, hi - colours).square().sum(1)
        candidates = torch.nonzero(least <= greatest.min()).flatten()  # in index order: ties stay lower
        points = corner + offsets
        dist = (points[:, None, :] - colours[candidates][None]).square().sum(-1)
        nearest = candidates[dist.argmin(dim=1)].to(torch.uint8)
        r, g, b = (int(v) for v in corner)
        table[r : r + side, g : g + side, b : b + side] = nearest.reshape(side, side, side)
    return table.reshape(-1)


@functools.cache
def _table_on(palette: tuple[str, ...], device: torch.device) -> torch.Tensor:
    """The table where the pixels are (copied to a GPU once, not every step)."""
    return _nearest_table(palette).to(device)


class PaletteSnap:
    """Every pixel to its nearest palette colour, as artctl-palette-v1 defines it."""

    def __init__(self, palette: list[str], channels: int) -> None:
        if not palette:
            raise ValueError("snap output needs a palette: the data's palette.json, or network.palette")
        self.palette = tuple(palette)
        self.colours = torch.from_numpy(palette_array(palette))  # uint8 [K, width]
        self.width = int(self.colours.shape[1])
        if self.width > channels:
            raise ValueError(f"an RGBA palette cannot snap a {channels}-channel generator")

    def indices(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [..., C] -> int64 [...]: the index of each pixel's nearest colour."""
        if self.width == 3:
            rgb = pixels[..., :3].to(torch.int64)
            flat = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            return _table_on(self.palette, pixels.device)[flat].to(torch.int64)
        colours = self.colours.to(device=pixels.device, dtype=torch.int32)
        return (pixels[..., None, :].to(torch.int32) - colours).square().sum(-1).argmin(dim=-1)

    def uint8(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC images snapped (alpha untouched under an RGB palette)."""
        out = images.clone()
        out[..., : self.width] = self.colours.to(images.device)[self.indices(images)]
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] float NCHW images snapped; in grad mode the gradient passes through unchanged."""
        snapped = self.uint8(quantize(x.detach())).permute(0, 3, 1, 2).to(x.dtype) / 127.5 - 1.0
        return snapped + (x - x.detach()) if torch.is_grad_enabled() else snapped
