"""Build networks by architecture name: the one switch the loop, checkpoints and exporter share.

Every generator implements artctl_trainer.contract's declared interface (GeneratorNet, or
StyleGeneratorNet for a w space): G(z, label=None, psi=None) -> image [B, C, H, W], z_dim,
num_classes, and snap: the palette snap that training and previews apply to its samples (the
exporter appends the same snap to the graph).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from artctl_trainer.config import NetworkConfig
from artctl_trainer.contract import GeneratorNet
from artctl_trainer.datasets import distinct_colours
from artctl_trainer.palette_snap import PaletteSnap
from artctl_trainer.trait_layers import read_traits

if TYPE_CHECKING:
    from artctl_trainer.datasets import ImageDataset


class UnknownArchitectureError(ValueError):
    """The config names an architecture this version of artctl cannot build."""


def _family(cfg: NetworkConfig):  # type: ignore[no-untyped-def]
    if cfg.label_layer and cfg.architecture != "dcgan":
        raise ValueError("label_layer: only the dcgan family draws a label layer")
    if cfg.backdrop and cfg.architecture != "dcgan":
        raise ValueError("backdrop: only the dcgan family draws a backdrop")
    if cfg.colour_slots and cfg.architecture != "dcgan":
        raise ValueError("colour_slots: only the dcgan family draws colour slots")
    if cfg.trait_layers and cfg.architecture != "dcgan":
        raise ValueError("trait_layers: only the dcgan family draws trait layers")
    if cfg.trait_ground and not cfg.trait_layers:
        raise ValueError("trait_ground: a ground is drawn around a trait layer's values; name trait_layers")
    if len(cfg.trait_layers) > cfg.z_dim:
        raise ValueError(f"trait_layers: {len(cfg.trait_layers)} traits need as many latent coordinates")
    if cfg.architecture == "dcgan":
        from artctl_trainer import networks_dcgan

        return networks_dcgan
    if cfg.architecture == "stylegan":
        from artctl_trainer import networks_stylegan

        return networks_stylegan
    raise UnknownArchitectureError(f"unknown architecture {cfg.architecture!r}")


def resolve_network(cfg: NetworkConfig, data: ImageDataset) -> NetworkConfig:
    """Fill what the config leaves to the data: channels (0), label names, the output palette."""
    resolved: dict[str, Any] = {"channels": cfg.channels or int(data.images.shape[1])}
    if data.label_names and not cfg.label_names:
        resolved["label_names"] = data.label_names
    if cfg.output != "rgb" and not cfg.palette:
        if not data.palette:
            raise ValueError(f"{cfg.output} output needs a palette; {data.source} has no palette.json")
        resolved["palette"] = data.palette
    if cfg.backdrop == ["auto"]:
        resolved["backdrop"] = backdrop_colours(data)
    if cfg.trait_layers and not cfg.trait_values:
        resolved["trait_values"] = read_traits(Path(data.source), data.files, cfg.trait_layers)[1]
    return cfg.model_copy(update=resolved)


MAX_BACKDROPS = 16


def backdrop_colours(data: ImageDataset) -> list[str]:
    """The data's backdrop colours: the colour of its images' four corners, where every image's
    corners share one colour and the data has at most MAX_BACKDROPS of them (Nouns: 2)."""
    corners = data.images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # [N, C, 4]
    if not bool((corners == corners[:, :, :1]).all()):
        raise ValueError(f"backdrop auto: the images of {data.source} do not all have one flat backdrop")
    colours = distinct_colours([corners[:, :, 0].numpy()]) or []  # None: over 256 of them
    if not colours or len(colours) > MAX_BACKDROPS:
        raise ValueError(f"backdrop auto: more than {MAX_BACKDROPS} corner colours in {data.source}")
    return colours


def _resolved(cfg: NetworkConfig) -> NetworkConfig:
    if not cfg.channels:
        raise ValueError(
            "channels 0 means 'follow the data': the trainer sets 3 or 4 once the data is loaded"
        )
    return cfg


def build_generator(cfg: NetworkConfig) -> GeneratorNet:
    """G of the config's family; `G.snap` is the palette snap its samples go through (or None)."""
    G: GeneratorNet = _family(cfg).Generator(_resolved(cfg))
    object.__setattr__(G, "snap", PaletteSnap(cfg.palette, cfg.channels) if cfg.output == "snap" else None)
    return G


def fit_to_data(G: GeneratorNet, cfg: NetworkConfig, data: ImageDataset) -> None:
    """What a new G takes from the data instead of learning it: the label layer and the trait
    layers, when asked for (the trait layers where the label layer leaves the pixels visible)."""
    if G.label_layer is not None:
        G.label_layer.fit(data.images, data.labels, cfg.label_layer)
    if G.trait_layers is not None:
        codes, names = read_traits(Path(data.source), data.files, cfg.trait_layers)
        if names != cfg.trait_values:
            raise ValueError(f"trait_layers: the values in {data.source} are not the config's trait_values")
        n, _, h, w = data.images.shape
        covered = torch.zeros((n, 1, h, w), dtype=torch.bool)
        if G.label_layer is not None:
            covered = G.label_layer.mask[data.labels.clamp(min=0)]
        G.trait_layers.fit(data.images, codes, covered, cfg.trait_share)


def build_discriminator(cfg: NetworkConfig) -> nn.Module:
    """D without spectral norm; call apply_spectral_norm after init_weights when cfg asks for it."""
    return _family(cfg).Discriminator(_resolved(cfg))


def init_weights(module: nn.Module, cfg: NetworkConfig) -> None:
    """Family-specific initialisation (StyleGAN layers initialise themselves: equalized lr)."""
    module.apply(_family(cfg).weights_init)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral-normalise every weight matrix/kernel of `module` (Miyato et al. 2018), in place."""
    from torch.nn.utils.parametrizations import spectral_norm

    targets = [
        m
        for m in module.modules()
        if isinstance(w := getattr(m, "weight", None), nn.Parameter) and w.dim() >= 2
    ]
    for m in targets:
        spectral_norm(m)
    return module


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """`module`'s parameters take no gradient inside (D during G's step: its weight gradients
    would only be thrown away); the input gradients that reach G are the same, bit for bit."""
    trained = [p for p in module.parameters() if p.requires_grad]
    for p in trained:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trained:
            p.requires_grad_(True)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The EMA generator's step: parameters move towards the trained ones, buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
