"""Training configuration as data: one pydantic model, saved verbatim in every checkpoint.

Every new field has a default that reproduces the earlier behaviour, so older checkpoints load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class NetworkConfig(BaseModel):
    """What is needed to rebuild the networks from a checkpoint (and nothing else)."""

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["dcgan", "stylegan"] = Field("dcgan", description="network family")
    resolution: int = Field(32, description="image size in pixels (16..256, a power of two)")
    channels: Literal[0, 3, 4] = Field(
        4, description="3 (RGB), 4 (RGBA) or 0: follow the data (RGB when every pixel is opaque; the presets)"
    )
    z_dim: int = Field(64, ge=1, le=4096, description="latent size")
    g_base: int = Field(32, ge=4, description="channels of the generator's last hidden layer")
    d_base: int = Field(32, ge=4, description="channels of the discriminator's first layer")
    max_channels: int = Field(256, ge=8, description="the widest layer of G and D")
    label_names: list[str] = Field(default_factory=list)
    conditional: bool = Field(False, description="condition G and D on the data set's labels")
    label_dim: int = Field(32, ge=1, description="label embedding size (conditional dcgan)")
    spectral_norm: bool = Field(False, description="spectral normalisation on D (replaces its BatchNorm)")
    output: Literal["rgb", "snap"] = Field(
        "rgb",
        description="snap: D judges G's samples snapped to the palette, as export will draw them "
        "(straight-through gradient); the pixel-art recipes",
    )
    palette: list[str] = Field(default_factory=list, description="the snap's palette: the data's when empty")
    backdrop: list[str] = Field(default_factory=list, description="flat backdrop colours; [auto]: the data's")
    colour_slots: int = Field(
        0,
        ge=0,
        le=64,
        description="draw G's figure in this many colours per image, one picked per pixel (0: free RGB)",
    )
    upsample: Literal["transpose", "nearest"] = Field(
        "transpose",
        description="dcgan G's 2x upsampling: a 4x4 transposed conv, or nearest-neighbour then a 3x3 conv "
        "(no checkerboard; trained as the transposed conv it equals, so it exports as one)",
    )
    d_depth: int = Field(
        0,
        ge=0,
        le=4,
        description="dcgan D: this many 3x3 stride-1 convs after each downsampling conv (SNGAN's standard "
        "CNN has one; 0: DCGAN's D). D only: the exported generator is unchanged",
    )
    label_layer: float = Field(
        0.0, ge=0.0, le=1.0, description="draw exactly each pixel this share of a label's images has (0: off)"
    )
    trait_layers: list[str] = Field(
        default_factory=list,
        description="traits of parts.jsonl the seed picks (latent coordinate i for the i-th) and the data "
        "draws exactly over G's output, in drawing order (dcgan; e.g. Nouns' head)",
    )
    trait_share: float = Field(
        0.98, gt=0.0, le=1.0, description="a trait layer draws each pixel this share of a value's images show"
    )
    trait_ground: bool = Field(
        False,
        description="a trait layer also draws, per value, the pixels its images show in their ground colour "
        "(pixel (0, 0)'s), in the sample's ground colour (voted by 16 anchor pixels): no traces of other "
        "values around it",
    )
    trait_layers_in_training: bool = Field(
        True,
        description="draw the trait layers in training steps too (off: only where G is sampled: previews, "
        "scores, export), so G learns the whole picture and the layers draw over it",
    )
    trait_dim: int = Field(
        0,
        ge=0,
        description="G also reads each trait layer's value as a learned embedding of this size (0: off)",
    )
    trait_values: dict[str, list[str]] = Field(
        default_factory=dict, description="the names of each trait layer's values (filled from the data)"
    )
    # StyleGAN only.
    w_dim: int = Field(0, ge=0, description="intermediate latent size; 0 means z_dim")
    mapping_layers: int = Field(8, ge=1, le=16, description="layers of the mapping network (stylegan)")
    mapping_lr_mult: float = Field(0.01, gt=0.0, description="the mapping network's learning-rate multiplier")
    w_avg_beta: float = Field(0.995, ge=0.0, lt=1.0, description="decay of the tracked mean w (psi's centre)")
    mbstd_group: int = Field(
        4, ge=1, description="minibatch-stddev group size of D (stylegan; dcgan with minibatch_std)"
    )
    minibatch_std: bool = Field(
        False,
        description="dcgan D: a minibatch-stddev feature before its last layer (stylegan's D always has "
        "one), so D sees when a batch of samples is too alike",
    )

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value not in (16, 32, 64, 128, 256):
            raise ValueError("resolution must be one of 16, 32, 64, 128, 256")
        return value

    @model_validator(mode="after")
    def _dcgan_depth(self) -> NetworkConfig:
        if self.d_depth and self.architecture != "dcgan":
            raise ValueError("d_depth deepens the dcgan discriminator; the stylegan D has its own depth")
        return self

    @property
    def num_classes(self) -> int:
        """Labels the networks are conditioned on (0: unconditional)."""
        return len(self.label_names) if self.conditional else 0

    @property
    def w_features(self) -> int:
        return self.w_dim or self.z_dim


class TrainConfig(BaseModel):
    """A whole training run: networks, data, losses, augmentation and optimisation."""

    model_config = ConfigDict(extra="forbid")

    network: NetworkConfig = Field(default_factory=NetworkConfig)
    data: str = Field("synthetic:shapes", description="image folder, .zip, or synthetic:shapes")
    synthetic_size: int = Field(2048, ge=16, description="images in synthetic:shapes")
    labels_file: str | None = Field(
        None, description="CSV (path,label) or JSON {path: label} naming each image's label; else sub-folders"
    )
    tensorboard: bool = Field(False, description="also log scalars and sample grids to RUN/tensorboard")
    mirror: bool = Field(False, description="random horizontal flips of reals")
    steps: int = Field(200, ge=1, description="optimisation steps")
    minutes: float | None = Field(
        None,
        ge=0.0,
        description="time budget of this invocation: stop at the first step past it (with a checkpoint), "
        "even before `steps`; 0 or None: no budget",
    )
    budget_clock: Literal["wall", "cpu"] = Field(
        "wall",
        description="what `minutes` counts: wall-clock time, or this process's CPU time over all its "
        "threads (equal-compute comparisons on a shared machine)",
    )
    batch: int = Field(
        32, ge=2, description="global batch: under torchrun DDP each rank trains on batch / world size"
    )
    lr_g: float = Field(2e-4, description="learning rate of G")
    lr_d: float = Field(2e-4, description="learning rate of D")
    beta1: float = Field(0.5, description="Adam beta1 of G and D")
    beta2: float = Field(0.999, description="Adam beta2 of G and D")
    lr_decay_from: int = Field(
        0,
        ge=0,
        description="from this step on, both learning rates fall linearly to 0 at `steps` (SNGAN's "
        "schedule: the run cools instead of drifting past its peak); 0: constant",
    )
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0, description="decay of G's moving average (G_ema)")
    ema_ramp: float = Field(
        10.0,
        gt=1.0,
        description="G_ema's decay at step s is at most (1 + s) / (ema_ramp + s): until ema_decay takes "
        "over (step 8,990 at 0.999 and 10), G_ema averages G over its whole run, weighted towards the "
        "end (the weight of step t grows as t^(ema_ramp - 2)): a smaller ramp averages longer",
    )
    ema_average_from: int = Field(
        0,
        ge=0,
        description="from this step on, a snapshot of G_ema every `ema_average_every` steps joins a "
        "uniform mean, and that mean is the generator the run samples, scores and exports (checkpoint "
        "averaging over the plateau past the peak); 0: off, G_ema itself",
    )
    ema_average_every: int = Field(500, ge=1, description="steps between the snapshots of the mean")
    seed: int = Field(0, ge=0, description="training RNG seed")
    sample_every: int = Field(100, ge=1, description="write a sample grid every N steps")
    checkpoint_every: int = Field(
        0, ge=0, description="write a checkpoint every N steps; 0: only at the end (and on an interrupt)"
    )
    keep_checkpoints: int = Field(
        0, ge=0, description="keep the newest N checkpoints (and the best scored one); 0: keep all"
    )
    fid_n: int = Field(
        0,
        ge=0,
        description="score every checkpoint (FID, KID, the quality gate) over this many images and "
        "keep a `best` pointer (0: off)",
    )
    best_by: Literal["fid", "kid"] = Field(
        "fid", description="what `best` minimises; KID is unbiased, so it ranks fairly at small n"
    )
    log_every: int = Field(10, ge=1, description="log losses and speed every N steps")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when available (GPU LOCAL_RANK under torchrun), else CPU"
    )
    memory_format: Literal["contiguous", "channels_last"] = Field(
        "contiguous",
        description="oneDNN's NHWC conv layout; the pixel-art recipes train in it (same speed as contiguous "
        "on a quiet 2-core AVX-512 box: bench/train_layouts.py); contiguous keeps the pixels of earlier runs",
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="bf16 autocast of G and D on GPU (auto: bf16 on CUDA); CPU always trains in fp32"
    )
    # Losses and regularisation.
    loss: Literal["bce", "hinge", "wgan-gp", "lsgan", "rpgan"] = Field(
        "bce", description="bce = non-saturating; rpgan = R3GAN's relativistic pairing loss"
    )
    gp_weight: float = Field(10.0, ge=0.0, description="WGAN-GP gradient-penalty weight")
    r1_gamma: float | None = Field(
        None, ge=0.0, description="R1 weight; None: 0.0002*res^2/batch for stylegan, off for dcgan"
    )
    r2_gamma: float = Field(0.0, ge=0.0, description="R2 weight: R1's penalty on fakes (R3GAN: = R1)")
    r1_interval: int = Field(16, ge=1, description="lazy R1/R2: penalise every N steps, scaled by N")
    style_mixing: float = Field(0.9, ge=0.0, le=1.0, description="style-mixing probability (stylegan)")
    # Small-data augmentation, applied to reals and fakes alike.
    augment: Literal["none", "diffaug", "ada"] = Field(
        "none", description="augmentation for small data, applied to reals and fakes"
    )
    diffaug_policy: str = Field("color,translation,cutout", description="DiffAugment ops, comma-separated")
    ada_target: float = Field(0.6, gt=0.0, lt=1.0, description="target E[sign(D(real))]")
    ada_interval: int = Field(4, ge=1, description="steps between ADA adjustments")
    ada_kimg: float = Field(100.0, gt=0.0, description="kimg for p to go from 0 to 1 at full speed")
    ada_p: float = Field(0.0, ge=0.0, le=1.0, description="initial augmentation probability")

    @model_validator(mode="after")
    def _check_penalty_needs_per_sample_critic(self) -> TrainConfig:
        """WGAN-GP and R1 penalise per-image gradients; BatchNorm in D mixes images, so they disagree."""
        net = self.network
        if (
            net.architecture == "dcgan"
            and not net.spectral_norm
            and (self.loss == "wgan-gp" or self.r1_weight > 0 or self.r2_gamma > 0)
        ):
            raise ValueError(
                "wgan-gp, R1 and R2 need a discriminator without BatchNorm: add spectral_norm "
                "(--spectral-norm replaces the DCGAN discriminator's BatchNorm)"
            )
        return self

    @model_validator(mode="after")
    def _check_policy(self) -> TrainConfig:
        from artctl_trainer.augment import DIFFAUG_OPS

        unknown = [op for op in self.diffaug_policy.split(",") if op and op not in DIFFAUG_OPS]
        if unknown:
            raise ValueError(f"unknown DiffAugment op(s) {unknown}; available: {sorted(DIFFAUG_OPS)}")
        return self

    @model_validator(mode="after")
    def _check_decay(self) -> TrainConfig:
        if self.lr_decay_from >= self.steps:
            raise ValueError(f"lr_decay_from ({self.lr_decay_from}) must be below steps ({self.steps})")
        return self

    def lr_scale(self, step: int) -> float:
        """The share of the base learning rates that step `step` (0-based) trains at."""
        if not self.lr_decay_from or step < self.lr_decay_from:
            return 1.0
        return max(0.0, (self.steps - step) / (self.steps - self.lr_decay_from))

    @property
    def r1_weight(self) -> float:
        if self.r1_gamma is not None:
            return self.r1_gamma
        if self.network.architecture == "stylegan":
            return 0.0002 * self.network.resolution**2 / self.batch
        return 0.0


def load_config(path: Path) -> TrainConfig:
    """Read a config.json (a checkpoint's or a user's) with clear validation errors."""
    return TrainConfig.model_validate(json.loads(Path(path).read_text()))
