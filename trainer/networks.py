"""Build networks by architecture name: the one switch the loop, checkpoints and exporter share."""

from __future__ import annotations

from torch import nn

from trainer.config import NetworkConfig


class UnknownArchitectureError(ValueError):
    """The config names an architecture this version of artctl cannot build."""


def build_generator(cfg: NetworkConfig) -> nn.Module:
    if cfg.architecture == "dcgan":
        from trainer import networks_dcgan

        return networks_dcgan.Generator(cfg)
    raise UnknownArchitectureError(f"unknown architecture {cfg.architecture!r}")


def build_discriminator(cfg: NetworkConfig) -> nn.Module:
    if cfg.architecture == "dcgan":
        from trainer import networks_dcgan

        return networks_dcgan.Discriminator(cfg)
    raise UnknownArchitectureError(f"unknown architecture {cfg.architecture!r}")


def init_weights(module: nn.Module, cfg: NetworkConfig) -> None:
    if cfg.architecture == "dcgan":
        from trainer import networks_dcgan

        module.apply(networks_dcgan.weights_init)
