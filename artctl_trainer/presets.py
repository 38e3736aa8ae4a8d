"""The recipes: named training configs (one per network family and data size), the auto choice among
them, and the layering of a run's config (preset <- config file <- flags).

Kept apart from artctl_trainer.config, which says what a config is; this module says which configs
artctl recommends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artctl_trainer.config import TrainConfig

# Recipes, one per network family and data size; flags and config files override them. Each sets a
# length that learns (`--minutes` stops earlier), checkpoints every few minutes of CPU time (an
# interrupted run loses at most that) and keeps the newest five. `PRESET_NOTES` says what each is
# for; `auto_preset` picks one from the family and the number of images.
_RECIPE_CPU = {"sample_every": 500, "checkpoint_every": 500, "keep_checkpoints": 5, "log_every": 50}
_STYLEGAN_OPT = {"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99, "ema_decay": 0.998}
_SMALL_STYLEGAN_NET = {
    "architecture": "stylegan",
    "resolution": 64,
    "channels": 0,
    "z_dim": 128,
    "w_dim": 128,
    "g_base": 16,
    "d_base": 16,
    "max_channels": 128,
}
PRESETS: dict[str, dict[str, Any]] = {
    "dcgan32": {
        "network": {"architecture": "dcgan", "resolution": 32, "channels": 0},
        "mirror": True,
        "steps": 10000,
        **_RECIPE_CPU,
    },
    "dcgan64": {
        "network": {"architecture": "dcgan", "resolution": 64, "channels": 0, "z_dim": 128, "g_base": 64},
        "batch": 64,
        "mirror": True,
        "steps": 20000,
        **_RECIPE_CPU,
        "checkpoint_every": 1000,
    },
    "small-data-dcgan32": {
        "network": {"architecture": "dcgan", "resolution": 32, "channels": 0, "spectral_norm": True},
        "loss": "hinge",
        "augment": "diffaug",
        "mirror": True,
        "steps": 10000,
        **_RECIPE_CPU,
    },
    "small-data-dcgan": {
        "network": {"architecture": "dcgan", "resolution": 64, "channels": 0, "spectral_norm": True},
        "loss": "hinge",
        "augment": "diffaug",
        "mirror": True,
        "steps": 10000,
        **_RECIPE_CPU,
    },
    "wgan-gp32": {
        "network": {"architecture": "dcgan", "resolution": 32, "channels": 0, "spectral_norm": True},
        "loss": "wgan-gp",
        "lr_g": 1e-4,
        "lr_d": 1e-4,
        "beta1": 0.0,
        "beta2": 0.9,
        "mirror": True,
        "steps": 10000,
        **_RECIPE_CPU,
    },
    "stylegan64": {
        "network": {
            "architecture": "stylegan",
            "resolution": 64,
            "channels": 0,
            "z_dim": 256,
            "w_dim": 256,
            "g_base": 64,
            "d_base": 64,
            "max_channels": 256,
        },
        **_STYLEGAN_OPT,
        "augment": "ada",
        "mirror": True,
        "steps": 20000,
        **_RECIPE_CPU,
        "checkpoint_every": 1000,
    },
    "small-data-stylegan64": {
        "network": _SMALL_STYLEGAN_NET,
        **_STYLEGAN_OPT,
        "augment": "ada",
        "ada_kimg": 100,
        "mirror": True,
        "steps": 5000,
        **_RECIPE_CPU,
    },
    # The embedded default model's recipe (models/emoji64-default), minus its data path and the
    # one thread it pinned for bit-reproduction: the README's command.
    "emoji64-stylegan-cond": {
        "network": {**_SMALL_STYLEGAN_NET, "conditional": True},
        **_STYLEGAN_OPT,
        "augment": "ada",
        "ada_kimg": 100,
        "mirror": True,
        "steps": 5000,
        "seed": 7,
        **_RECIPE_CPU,
    },
}
# The GPU recipe for the emoji set (docs/gpu.md, part 2): the GPU-sized conditional StyleGAN-type
# network with R3GAN's objective (RpGAN + R1 + R2 of equal weight) and ADA, chosen from CPU runs of
# the arms (docs/quality.md). Sized for one command on one H200: bf16 autocast, batch 128, a 7-minute
# wall-clock budget that ends it, a checkpoint every 2,000 steps, no FID during training (scored
# afterwards on CPU), and no horizontal flips: emoji are not mirror-symmetric.
PRESETS["emoji64-gpu"] = {
    "network": {**PRESETS["stylegan64"]["network"], "conditional": True},
    **_STYLEGAN_OPT,
    "loss": "rpgan",
    "r1_gamma": 0.0002 * 64**2 / 128,
    "r2_gamma": 0.0002 * 64**2 / 128,
    "augment": "ada",
    "ada_kimg": 100,
    "mirror": False,
    "batch": 128,
    "device": "cuda",
    "precision": "bf16",
    "steps": 1_000_000,
    "minutes": 7.0,
    "budget_clock": "wall",
    "sample_every": 2000,
    "checkpoint_every": 2000,
    "keep_checkpoints": 1,
    "log_every": 200,
    "seed": 7,
}
PRESETS["emoji64-stylegan"] = PRESETS["stylegan64"]  # its earlier name
# Pixel art on a CPU (docs/quality.md, "Pixel art"): the Nouns-style recipe, conditional on the data's
# sub-folders (the glasses of `artctl data nouns`). No flips: pixel-art characters face one way. Its runs
# peak at about 3,000 steps and then drift as D wins (docs/quality.md, "Holding the peak"). EMA ramp 4:
# G swings from checkpoint to checkpoint, and G_ema averaging its last quarter, not its last tenth,
# scores better and holds the peak (docs/quality.md, "Past the peak"). The tail average: the mean of
# G_ema at steps 3,000, 3,500, ..., 5,000 beat every one of them, in two runs (docs/quality.md, "The
# tail average, built in"), so the run goes on to 5,000 steps and exports that mean.
_PIXEL_NET = {
    "architecture": "dcgan",
    "resolution": 32,
    "channels": 0,
    "spectral_norm": True,
    "output": "snap",
}
_NOUNS_NET = {
    "conditional": True,
    "z_dim": 64,
    "g_base": 64,
    "d_base": 64,
    "label_layer": 0.98,
    "colour_slots": 16,
}
# Layered art with each image's traits in parts.jsonl (`artctl data nouns` writes it): the head is
# picked by the seed and drawn exactly from the data (trait layers) over G's samples. It lifted recall
# at n = 10,000 from 0.05 to 0.61 (docs/quality.md, "Trait layers"). Kept out of training steps: G
# trained under the layer left ghosts of its own heads around the art's and scored worse. Kept out, G
# still paints traces of other heads around a small one: the ground (`trait_ground`) draws, around
# each head, the pixels its images always show as background in the sample's background colour
# (precision at n = 10,000 from 0.44 to 0.80, FID from 15.1 to 7.8; docs/quality.md, "The ground").
_LAYERED_NET = {"trait_layers": ["head"], "trait_layers_in_training": False, "trait_ground": True}
PRESETS["nouns32"] = {
    "network": {**_PIXEL_NET, **_NOUNS_NET, **_LAYERED_NET},
    **{"loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.9, "batch": 64},
    **{"mirror": False, "memory_format": "channels_last", "steps": 5000, "seed": 7, "ema_ramp": 4.0},
    **{"ema_average_from": 3000, "ema_average_every": 500},
    **_RECIPE_CPU,
    **{"sample_every": 1000, "checkpoint_every": 1000},
}
PRESETS["pixel32-cond"] = {  # labelled pixel art without parts.jsonl: nouns32 without trait layers
    **PRESETS["nouns32"],
    "network": {**_PIXEL_NET, **_NOUNS_NET},
}
PRESETS["pixel32"] = {
    **PRESETS["nouns32"],
    "network": {**_PIXEL_NET, **_NOUNS_NET, "conditional": False, "label_layer": 0.0},
}

PRESET_NOTES: dict[str, str] = {
    "dcgan32": "DCGAN, 32 px, 2,000+ images: the quick start",
    "dcgan64": "DCGAN, 64 px, 2,000+ images",
    "small-data-dcgan32": "SNGAN (spectral norm, hinge) + DiffAugment, 32 px, under 2,000 images",
    "small-data-dcgan": "SNGAN (spectral norm, hinge) + DiffAugment, 64 px, under 2,000 images",
    "wgan-gp32": "WGAN-GP critic (spectral norm, no BatchNorm), 32 px, 2,000+ images",
    "stylegan64": "StyleGAN2-type + ADA, 64 px, 2,000+ images (GPU-sized network)",
    "small-data-stylegan64": "StyleGAN2-type + ADA, 64 px, small network, under 2,000 images (CPU-sized)",
    "emoji64-stylegan-cond": "the embedded default model's recipe: conditional small-data-stylegan64",
    "emoji64-gpu": "the emoji set on one GPU: conditional StyleGAN-type, RpGAN + R1 + R2, ADA, no flips",
    "emoji64-stylegan": "the earlier name of stylegan64",
    "nouns32": "layered pixel art, 32 px, conditional on sub-folders (Nouns' glasses): SNGAN + hinge, "
    "trained through the palette snap, 16 colour slots per image, the label's shared pixels drawn "
    "exactly (label layer), the head picked by the seed and drawn exactly from parts.jsonl with the "
    "background around it (trait layer and its ground), a long EMA averaged over the run's plateau "
    "(tail average), no flips",
    "pixel32-cond": "pixel art, 32 px, conditional on sub-folders: nouns32 without trait layers, no flips",
    "pixel32": "pixel art, 32 px, unconditional: nouns32 without labels or trait layers, no flips",
}
PIXEL_PRESETS = ("nouns32", "pixel32-cond", "pixel32")  # the recipes that never flip
SMALL_DATA = 2000  # fewer images than this: the small-data recipe of the family (augmentation)


def auto_preset(
    architecture: str, images: int, pixel_art: bool = False, labelled: bool = False, layered: bool = False
) -> str:
    """The preset for a run that names none: the family's recipe for the data's size, or the
    pixel-art recipe (no flips) for a DCGAN on a folder that ships a palette.json (`layered`: and a
    parts.jsonl naming the traits nouns32 draws from the data)."""
    if pixel_art and architecture == "dcgan":
        if not labelled:
            return "pixel32"
        return "nouns32" if layered else "pixel32-cond"
    small = images < SMALL_DATA
    if architecture == "stylegan":
        return "small-data-stylegan64" if small else "stylegan64"
    return "small-data-dcgan32" if small else "dcgan32"


def preset(name: str) -> TrainConfig:
    """A named preset as a full config (unknown names list the known ones)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return TrainConfig.model_validate(PRESETS[name])


def _layer(merged: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer` over `merged`; the network block is merged key by key, one level deeper."""
    out = {**merged, **{k: v for k, v in layer.items() if k != "network"}}
    out["network"] = {**merged.get("network", {}), **layer.get("network", {})}
    return out


def resolve_config(
    preset_name: str | None = None,
    config_file: Path | None = None,
    base: TrainConfig | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """The run's config: preset <- config file <- overrides (command-line flags), later layers winning.

    `base` (a resumed run's own config) is the first layer when neither a preset nor a file is
    given. `overrides` may hold a "network" dict for network fields.
    """
    layers: list[dict[str, Any]] = []
    if preset_name is not None:
        layers.append(preset(preset_name).model_dump(exclude_unset=True))
    if config_file is not None:
        layers.append(json.loads(Path(config_file).read_text()))
    if not layers and base is not None:
        layers.append(base.model_dump())
    layers.append(overrides or {})
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _layer(merged, layer)
    return TrainConfig.model_validate(merged)
