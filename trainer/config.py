"""Training configuration as data: one pydantic model, saved verbatim in every checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ARCHITECTURES = ("dcgan",)


class NetworkConfig(BaseModel):
    """What is needed to rebuild the networks from a checkpoint (and nothing else)."""

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["dcgan"] = "dcgan"
    resolution: int = 32
    channels: Literal[3, 4] = 4
    z_dim: int = Field(64, ge=1, le=4096)
    g_base: int = Field(32, ge=4, description="channels of the generator's last hidden layer")
    d_base: int = Field(32, ge=4, description="channels of the discriminator's first layer")
    max_channels: int = Field(256, ge=8)
    label_names: list[str] = Field(default_factory=list)

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value not in (16, 32, 64, 128, 256):
            raise ValueError("resolution must be one of 16, 32, 64, 128, 256")
        return value


class TrainConfig(BaseModel):
    """A whole training run: networks, data and optimisation."""

    model_config = ConfigDict(extra="forbid")

    network: NetworkConfig = Field(default_factory=NetworkConfig)
    data: str = Field("synthetic:shapes", description="image folder, or synthetic:shapes")
    synthetic_size: int = Field(2048, ge=16)
    mirror: bool = False
    steps: int = Field(200, ge=1)
    batch: int = Field(32, ge=2)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0)
    sample_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end")
    log_every: int = Field(10, ge=1)
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default")


def load_config(path: Path) -> TrainConfig:
    """Read a config.json (a checkpoint's or a user's) with clear validation errors."""
    return TrainConfig.model_validate(json.loads(Path(path).read_text()))
