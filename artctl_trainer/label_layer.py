"""The label layer: the pixels every training image of a label shares, drawn exactly over G's output.

Layered pixel art (Nouns, most profile-picture collections) draws its traits one over another. When
the network is conditioned on the trait drawn last, the pixels that trait covers are the same in
every training image of the label. A convolutional G only comes near them: a frame pixel a few
values off lands on a neighbouring palette shade, and the trait is then not the artist's. So those
pixels are counted from the data, not learned: for each label and pixel, the most common colour and
the share of the label's images that have it. Where that share reaches `share`, the layer draws the
colour, opaque, over G's output; G draws everything else, and D judges the composite.

Nothing here is trained. The layer is a statistic of the data, taken once when a run starts, and it
is saved with G's weights (two buffers), so a checkpoint, its EMA copy and its export all carry it.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelLayer(nn.Module):
    """mask [L, 1, H, W] (drawn or not) and pixels [L, C, H, W] (uint8 colours), per label."""

    def __init__(self, num_classes: int, channels: int, resolution: int) -> None:
        super().__init__()
        side = (resolution, resolution)
        self.register_buffer("mask", torch.zeros((num_classes, 1, *side), dtype=torch.bool))
        self.register_buffer("pixels", torch.zeros((num_classes, channels, *side), dtype=torch.uint8))
        self.mask: torch.Tensor
        self.pixels: torch.Tensor

    @torch.no_grad()
    def fit(self, images: torch.Tensor, labels: torch.Tensor, share: float) -> None:
        """Set the layer from uint8 images [N, C, H, W] and their labels [N]: per label, the pixels
        whose most common colour at least `share` of the label's images have (ties: the lower colour)."""
        if images.shape[1:] != self.pixels.shape[1:]:
            shapes = f"images {tuple(images.shape[1:])}, layer {tuple(self.pixels.shape[1:])}"
            raise ValueError(f"label layer: {shapes}")
        weights = torch.tensor([1 << (8 * i) for i in range(images.shape[1])], dtype=torch.int64)
        for label in range(self.mask.shape[0]):
            own = images[labels == label]
            if not len(own):
                continue
            packed = (own.to(torch.int64) * weights[None, :, None, None]).sum(dim=1)  # [n, H, W]
            mode = packed.sort(dim=0).values.mode(dim=0).values  # sorted first: the lowest of tied modes
            count = (packed == mode).sum(dim=0)
            self.mask[label, 0] = count >= share * len(own)
            channels = [(mode >> (8 * i)) & 255 for i in range(images.shape[1])]
            self.pixels[label] = torch.stack(channels).to(torch.uint8) * self.mask[label]

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images [B, C, H, W] with the label's pixels drawn over them (no gradient there)."""
        colours = self.pixels[label].to(image.dtype) / 127.5 - 1.0
        return torch.where(self.mask[label], colours, image)

    def drawn(self) -> float:
        """The share of pixels the layer draws, over all labels."""
        return float(self.mask.float().mean())
