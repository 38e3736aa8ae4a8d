"""DCGAN (Radford et al. 2015): transposed-conv generator, strided-conv discriminator.

Sizes follow the resolution: one 2x upsampling block per octave from 4x4. Channel widths double
towards the low-resolution end, capped at `max_channels`. BatchNorm runs in eval mode at export, so
every image depends on its own latent only (batch-invariant), which the serving contract relies on.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from trainer.config import NetworkConfig


def _widths(resolution: int, base: int, cap: int) -> list[int]:
    """Channel width at each resolution from 4x4 up to resolution/2 (low-res first)."""
    n = int(math.log2(resolution)) - 2
    return [min(base * 2 ** (n - 1 - i), cap) for i in range(n)]


class Generator(nn.Module):
    """z [B, z_dim] -> image [B, C, H, W] in [-1, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        widths = _widths(cfg.resolution, cfg.g_base, cfg.max_channels)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """image [B, C, H, W] -> logit [B]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        widths = list(reversed(_widths(cfg.resolution, cfg.d_base, cfg.max_channels)))
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.net(img).flatten()


def weights_init(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) convs, N(1, 0.02) BatchNorm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
