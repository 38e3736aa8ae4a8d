"""The interface every generator family declares, and the model capabilities it implies.

The exporter, previews, scoring and the training sampler read a generator through these classes,
never by probing its attributes: a family says what it is by which class it subclasses.
- `GeneratorNet`: G(z, label=None, psi=None) -> image [B, C, H, W] in [-1, 1]; z_dim, num_classes,
  `snap` (the palette snap its samples go through, or None), `label_layer` and `trait_layers`
  (or None).
- `StyleGeneratorNet`: a w space besides (map, synthesis, num_ws, w_dim) and a truncation input.
`capabilities` turns a network into artctl.capabilities' contract, which the model card then carries.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import nn

from artctl.capabilities import Capabilities, WSpace
from artctl_trainer.config import NetworkConfig
from artctl_trainer.label_layer import LabelLayer
from artctl_trainer.trait_layers import TraitLayers


class Snap(Protocol):
    """What G's samples go through before D and previews (artctl_trainer.palette_snap.PaletteSnap)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def uint8(self, images: torch.Tensor) -> torch.Tensor: ...


class GeneratorNet(nn.Module):
    """What every generator offers: z (and a label when conditional) in, an image out."""

    has_psi: ClassVar[bool] = False
    z_dim: int
    num_classes: int
    snap: Snap | None = None  # set by artctl_trainer.networks.build_generator
    # Pixels drawn exactly over the output (dcgan), or None. Set in __init__, never as a class
    # attribute: a class-level value would shadow the registered submodule.
    label_layer: LabelLayer | None
    trait_layers: TraitLayers | None  # traits the seed picks, drawn exactly (dcgan), or None

    def forward(
        self, z: torch.Tensor, label: torch.Tensor | None = None, psi: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


class StyleGeneratorNet(GeneratorNet):
    """A generator with a w space: z -> map -> ws [B, num_ws, w_dim] -> synthesis -> image."""

    has_psi: ClassVar[bool] = True
    num_ws: int
    w_dim: int
    synthesis: nn.Module

    def map(
        self, z: torch.Tensor, label: torch.Tensor | None = None, psi: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def train_forward(
        self, z: torch.Tensor, label: torch.Tensor | None, gen: torch.Generator, mixing_prob: float
    ) -> torch.Tensor:
        raise NotImplementedError


def capabilities(
    G: GeneratorNet, cfg: NetworkConfig, palette: list[str] | None = None, default_psi: float = 1.0
) -> Capabilities:
    """The contract of an export of G: its inputs and spaces, the palette its graph snaps to."""
    style = G if isinstance(G, StyleGeneratorNet) else None
    return Capabilities(
        architecture=cfg.architecture,
        z_dim=G.z_dim,
        resolution=cfg.resolution,
        channels=cfg.channels,
        label_names=tuple(cfg.label_names) if G.num_classes else (),
        psi=G.has_psi,
        default_psi=default_psi if G.has_psi else 1.0,
        w_space=WSpace(style.num_ws, style.w_dim) if style is not None else None,
        palette=tuple(palette or ()),
    )
