"""Token traits: conditioning traits drawn from the seed contract, derived traits read off the pixels.

Both kinds are pure functions (of salt + token id, or of the uint8 pixels, in integer arithmetic),
so `artctl verify` and anyone with the model can recompute every attribute a marketplace shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.collection import CollectionConfig, ConditioningTrait, ConfigError, DerivedTrait
from artctl.seeds import trait_draw

ALPHA_OPAQUE = 128  # alpha at or above this counts as opaque; below, as background
# How dominant_colour names colours with the built-in palette. v1: the palette entry nearest in RGB,
# which puts mid grey in the middle of the cube, so muted orange or blue tokens came out "grey".
# v2: by hue and chroma (below). A palette of the config's own is matched by RGB distance in both.
COLOUR_V1, COLOUR_V2 = "artctl-colour-v1", "artctl-colour-v2"
COLOUR_CONTRACT = COLOUR_V2
CHROMA_MIN = 40  # max(r,g,b) - min(r,g,b) below this: a neutral (black, grey, white)
COLOURFUL_SHARE = 25  # percent of opaque pixels with colour above which a token is named by hue
# Hue sectors in degrees (start, name), the last running to 360; brown is a dark red/orange/yellow.
HUES = (
    (0, "red"),
    (15, "orange"),
    (45, "yellow"),
    (70, "green"),
    (165, "teal"),
    (195, "blue"),
    (255, "purple"),
    (290, "pink"),
    (340, "red"),
)


@dataclass
class TraitPlan:
    """Which configured traits apply to this model, and how conditioning values map to labels."""

    conditioning: ConditioningTrait | None = None
    label_index: dict[str, int] = field(default_factory=dict)  # trait value -> model label index
    derived: list[DerivedTrait] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # attribute order: the config's, active traits only
    skipped: list[str] = field(default_factory=list)  # human-readable notes on traits left out

    colour: str = COLOUR_CONTRACT  # how dominant_colour names colours (a drop's manifest records it)

    def draw_label(self, salt: str, token_id: int) -> tuple[str, int] | None:
        """The conditioning value and model label of one token (None without a conditioning trait)."""
        trait = self.conditioning
        if trait is None:
            return None
        value = trait_draw(salt, token_id, trait.name, trait.values, trait.weights)
        return value, self.label_index[value]

    def traits_for(
        self, salt: str, token_id: int, pixels: npt.NDArray[np.uint8], drawn: str | None = None
    ) -> dict[str, str]:
        """Every active trait of one token, keyed by trait name."""
        out: dict[str, str] = {}
        for trait in self.derived:
            out[trait.name] = derive(trait, pixels, self.colour)
        pair = self.draw_label(salt, token_id) if drawn is None else None
        if self.conditioning is not None:
            out[self.conditioning.name] = drawn if drawn is not None else pair[0] if pair else ""
        return {name: out[name] for name in self.order}


def plan_traits(
    config: CollectionConfig, card: Mapping[str, Any], colour: str = COLOUR_CONTRACT
) -> TraitPlan:
    """Match the config's traits to the model card; refuse label names the model does not have."""
    plan = TraitPlan(colour=colour)
    has_label = bool(card.get("has_label")) and bool(card.get("label_names"))
    model_labels = [str(n) for n in card.get("label_names") or []]
    for i, trait in enumerate(config.traits):
        if isinstance(trait, DerivedTrait):
            plan.derived.append(trait)
            plan.order.append(trait.name)
            continue
        if not has_label:
            if trait.on_unconditional == "error":
                raise ConfigError(
                    f"traits.{i} ({trait.name}): the model {card.get('name', '')!r} has no labels, so a "
                    'conditioning trait cannot steer it (set on_unconditional = "skip" to leave it out)'
                )
            plan.skipped.append(f"{trait.name}: conditioning trait skipped, the model has no labels")
            continue
        for value, label in zip(trait.values, trait.label_names()):
            if label not in model_labels:
                raise ConfigError(
                    f"traits.{i} ({trait.name}).labels: the model has no label {label!r} "
                    f"(it has: {', '.join(model_labels)})"
                )
            plan.label_index[value] = model_labels.index(label)
        plan.conditioning = trait
        plan.order.append(trait.name)
    return plan


def _opaque_rgb(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """The RGB of pixels that count as foreground; all pixels when none do (or there is no alpha)."""
    rgb = pixels[..., :3] if pixels.shape[2] >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    flat = rgb.reshape(-1, 3).astype(np.int64)
    if pixels.shape[2] == 4:
        mask = pixels[..., 3].reshape(-1) >= ALPHA_OPAQUE
        if mask.any():
            return flat[mask]
    return flat


def _bucket(values: Sequence[str], thresholds: Sequence[int], below: Any) -> str:
    """values[i] for the first threshold i the measure is below (`below(t)` decides), else the last."""
    for value, threshold in zip(values, thresholds):
        if below(threshold):
            return value
    return values[-1]


def _hue_name(px: npt.NDArray[np.int64]) -> str:
    """artctl-colour-v2: when at least a quarter of the opaque pixels have colour (chroma >= 40), the
    hue sector with the most chroma among them (each pixel's vote is its chroma, so vivid pixels
    outweigh muddy ones; dark reds, oranges and yellows count as brown); else black, grey or white
    by the neutral pixels' mean lightness. Integer arithmetic throughout."""
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    top, low = px.max(axis=1), px.min(axis=1)
    chroma = top - low
    colourful = chroma >= CHROMA_MIN
    if int(colourful.sum()) * 100 >= COLOURFUL_SHARE * len(px):
        r, g, b, top, c = r[colourful], g[colourful], b[colourful], top[colourful], chroma[colourful]
        # Hue in degrees (0..359) from the max channel, as HSV does, in integers.
        hue = np.where(
            top == r,
            (60 * (g - b) // c) % 360,
            np.where(top == g, 120 + 60 * (b - r) // c, 240 + 60 * (r - g) // c),
        )
        starts = np.array([start for start, _ in HUES])
        names = [name for _, name in HUES]
        sector = np.searchsorted(starts, hue, side="right") - 1
        labels = np.array(names, dtype=object)[sector]
        dark_warm = ((hue < 70) | (hue >= 340)) & (top < 150)  # dark red, orange or yellow
        labels = np.where(dark_warm, "brown", labels)
        order = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown"]
        votes = [int(c[labels == name].sum()) for name in order]  # vivid pixels count for more
        return order[int(np.argmax(votes))]  # ties: the first in this order
    neutral = px[~colourful]
    lightness = int((neutral.max(axis=1) + neutral.min(axis=1)).sum()) // (2 * len(neutral))
    return "black" if lightness < 60 else "white" if lightness >= 200 else "grey"


def derive(trait: DerivedTrait, pixels: npt.NDArray[np.uint8], colour: str = COLOUR_CONTRACT) -> str:
    """One derived trait of an HWC uint8 image; integers only, so every platform agrees."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError("derived traits need a uint8 [H, W, C] image")
    if trait.source == "dominant_colour":
        if trait.palette is None and colour == COLOUR_V2:
            return _hue_name(_opaque_rgb(pixels))
        if colour not in (COLOUR_V1, COLOUR_V2):
            raise ValueError(f"unknown colour naming {colour!r} (this artctl knows {COLOUR_V1}, {COLOUR_V2})")
        items = trait.palette_items()
        palette = np.array([rgb for _, rgb in items], dtype=np.int64)
        px = _opaque_rgb(pixels)
        dist = ((px[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
        votes = np.bincount(dist.argmin(axis=1), minlength=len(items))
        return items[int(votes.argmax())][0]  # ties: the palette's first
    assert trait.values is not None and trait.thresholds is not None
    if trait.source == "brightness":
        px = _opaque_rgb(pixels)
        luma_sum = int((px @ np.array([299, 587, 114], dtype=np.int64)).sum())  # luma * 1000
        count = len(px)
        return _bucket(trait.values, trait.thresholds, lambda t: luma_sum < t * 1000 * count)
    total = pixels.shape[0] * pixels.shape[1]
    clear = int((pixels[..., 3] < ALPHA_OPAQUE).sum()) if pixels.shape[2] == 4 else 0
    return _bucket(trait.values, trait.thresholds, lambda t: clear * 100 < t * total)
