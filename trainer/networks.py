"""Build networks by architecture name: the one switch the loop, checkpoints and exporter share.

Every generator has the same call: G(z, label=None, psi=None) -> image [B, C, H, W], with attributes
z_dim, num_classes and has_psi, which the exporter turns into the ONNX inputs z, psi and label.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.config import NetworkConfig


class UnknownArchitectureError(ValueError):
    """The config names an architecture this version of artctl cannot build."""


def _family(cfg: NetworkConfig):  # type: ignore[no-untyped-def]
    if cfg.architecture == "dcgan":
        from trainer import networks_dcgan

        return networks_dcgan
    if cfg.architecture == "stylegan":
        from trainer import networks_stylegan

        return networks_stylegan
    raise UnknownArchitectureError(f"unknown architecture {cfg.architecture!r}")


def _resolved(cfg: NetworkConfig) -> NetworkConfig:
    if not cfg.channels:
        raise ValueError(
            "channels 0 means 'follow the data': the trainer sets 3 or 4 once the data is loaded"
        )
    return cfg


def build_generator(cfg: NetworkConfig) -> nn.Module:
    return _family(cfg).Generator(_resolved(cfg))


def build_discriminator(cfg: NetworkConfig) -> nn.Module:
    """D without spectral norm; call apply_spectral_norm after init_weights when cfg asks for it."""
    return _family(cfg).Discriminator(_resolved(cfg))


def init_weights(module: nn.Module, cfg: NetworkConfig) -> None:
    """Family-specific initialisation (StyleGAN layers initialise themselves: equalized lr)."""
    family = _family(cfg)
    if hasattr(family, "weights_init"):
        module.apply(family.weights_init)


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


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The EMA generator's step: parameters move towards the trained ones, buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
