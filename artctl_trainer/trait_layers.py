"""Trait layers: traits of layered art that the seed picks and the data draws, exactly.

Layered pixel art draws a few large traits (Nouns' heads) one over another. A convolutional G
paints them only approximately: its heads are head-like, seldom one of the art's, and the part
probe finds them spread over half as many kinds as the data's (docs/quality.md, "Where recall is
lost"). A trait layer takes such a trait out of G's hands, as the label layer does for the trait a
drop asks for, but without a label: the seed picks the value, and the data says what it looks like.

- The pick: trait i reads latent coordinate i, cut at the quantiles of N(0, 1) that give each value
  its share of the training images. The cut is a comparison of z_i * 2^20 (exact in float32) with
  integer thresholds, so every runtime picks the same value. G reads the same coordinate, so it can
  learn what lies around each value.
- The pixels: for each value, the pixels that at least `share` of its images show in one colour,
  counted where no later layer covers them (traits are fitted from the last drawn to the first,
  after the label layer), drawn opaque over G's output in the art's order. G draws the rest.
- The ground (`ground`, optional): for each value, the pixels that at least `share` of its images
  show in their own ground colour (the colour of pixel (0, 0)), drawn in the ground colour of G's
  sample. G was trained on every value, so around a small head it paints traces of larger ones;
  where the art always shows the ground there, the ground is what the layer draws. The sample's
  ground colour is the one most of ANCHORS pixels show, spread over the pixels nearly every image
  shows as ground: a stray pixel of G's in a corner does not recolour the whole ground.

The values come from `parts.jsonl` beside the images (one JSON object per image: its `file`, each
trait's value index and, optionally, `<trait>_name`), as `artctl data nouns` writes it. Nothing
here is trained: the layers are buffers of G, saved and exported with its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

PARTS_FILE = "parts.jsonl"
FIXED = 2**20  # the pick compares z * FIXED, exact in float32, with integer thresholds
MIN_SEEN = 4  # a pixel is drawn only where at least this many of the value's images show it
ANCHORS = 16  # pixels that vote for a sample's ground colour


class TraitError(ValueError):
    """The data has no usable trait values for a trait layer."""


def read_traits(
    folder: Path, files: list[str], traits: list[str]
) -> tuple[torch.Tensor, dict[str, list[str]]]:
    """Each image's value of each trait [N, T] (indices into the names) and the names of the values
    seen, per trait, in the order of their index in `parts.jsonl`."""
    path = Path(folder) / PARTS_FILE
    if not path.is_file():
        raise TraitError(
            f"trait layers need {PARTS_FILE} beside the images (one line per image); {path} is missing"
        )
    rows: dict[str, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            rows[str(row["file"])] = row
        except (ValueError, KeyError, TypeError):
            raise TraitError(f"{path}:{number} is not a JSON object with a 'file'") from None
    missing = [f for f in files if f not in rows]
    if missing:
        raise TraitError(f"{len(missing)} image(s) have no line in {path}, e.g. {missing[0]!r}")
    names: dict[str, list[str]] = {}
    columns = []
    for trait in traits:
        try:
            raw = [int(rows[f][trait]) for f in files]
        except (KeyError, TypeError, ValueError):
            raise TraitError(f"{path}: some line has no integer {trait!r}") from None
        seen = sorted(set(raw))
        if len(seen) < 2:
            raise TraitError(
                f"trait {trait!r} has {len(seen)} value(s) in {path}: nothing for the seed to pick"
            )
        name_of = {int(rows[f][trait]): str(rows[f].get(f"{trait}_name", rows[f][trait])) for f in files}
        names[trait] = [name_of[v] for v in seen]
        index = {v: i for i, v in enumerate(seen)}
        columns.append(torch.tensor([index[v] for v in raw], dtype=torch.int64))
    return torch.stack(columns, dim=1), names


def names_traits(folder: Path, traits: list[str]) -> bool:
    """Whether the folder's parts.jsonl names every one of `traits` on its first line (a cheap look,
    for the auto choice of a recipe; read_traits checks every line)."""
    try:
        with (Path(folder) / PARTS_FILE).open() as lines:
            first = json.loads(lines.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and all(t in first for t in traits)


class TraitLayer(nn.Module):
    """One trait: thresholds [K-1] (int64, the pick), mask [K, 1, H, W] and pixels [K, C, H, W];
    with `ground`, a ground mask [K, 1, H, W] too."""

    def __init__(self, values: int, channels: int, resolution: int, ground: bool = False) -> None:
        super().__init__()
        side = (resolution, resolution)
        self.register_buffer("thresholds", torch.zeros(values - 1, dtype=torch.int64))
        self.register_buffer("mask", torch.zeros((values, 1, *side), dtype=torch.bool))
        self.register_buffer("pixels", torch.zeros((values, channels, *side), dtype=torch.uint8))
        self.register_buffer("ground", torch.zeros((values, 1, *side), dtype=torch.bool) if ground else None)
        self.thresholds: torch.Tensor
        self.mask: torch.Tensor
        self.pixels: torch.Tensor
        self.ground: torch.Tensor | None

    @torch.no_grad()
    def fit(self, images: torch.Tensor, codes: torch.Tensor, covered: torch.Tensor, share: float) -> None:
        """From uint8 images [N, C, H, W], their values [N] and the pixels later layers cover [N, 1, H, W]."""
        values = self.mask.shape[0]
        counts = torch.bincount(codes, minlength=values).double()
        cumulative = (counts.cumsum(0) / counts.sum())[:-1]
        self.thresholds.copy_(torch.ceil(torch.special.ndtri(cumulative) * FIXED).clamp(-(2**31), 2**31))
        weights = torch.tensor([1 << (8 * i) for i in range(images.shape[1])], dtype=torch.int64)
        for value in range(values):
            own = codes == value
            packed = (images[own].to(torch.int64) * weights[None, :, None, None]).sum(dim=1)  # [n, H, W]
            hidden = covered[own, 0]
            seen = (~hidden).sum(dim=0)
            if self.ground is not None:
                grounded = ((packed == packed[:, :1, :1]) & ~hidden).sum(dim=0)
                self.ground[value, 0] = (seen >= MIN_SEEN) & (grounded >= share * seen)
            # A covered pixel gets a colour of its own (negative, unique), so it never makes a mode.
            packed[hidden] = -1 - torch.arange(int(hidden.sum()), dtype=torch.int64)
            mode = packed.sort(dim=0).values.mode(dim=0).values
            count = (packed == mode).sum(dim=0)
            drawn = (mode >= 0) & (seen >= MIN_SEEN) & (count >= share * seen)
            self.mask[value, 0] = drawn
            if self.ground is not None:
                self.ground[value, 0] &= ~drawn
            channels = [(mode.clamp(min=0) >> (8 * i)) & 255 for i in range(images.shape[1])]
            self.pixels[value] = torch.stack(channels).to(torch.uint8) * drawn

    def pick(self, coordinate: torch.Tensor) -> torch.Tensor:
        """Each latent's value [B] from its coordinate [B, 1]: how many thresholds it reaches."""
        return (coordinate * FIXED >= self.thresholds.to(coordinate.dtype)).sum(dim=1)

    def forward(
        self, image: torch.Tensor, value: torch.Tensor, ground: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Over `image`, per value [B]: its ground in the colour `ground` [B, C, 1, 1], then its pixels."""
        if self.ground is not None and ground is not None:
            image = torch.where(self.ground[value], ground, image)
        colours = self.pixels[value].to(image.dtype) / 127.5 - 1.0
        return torch.where(self.mask[value], colours, image)

    def covers(self, value: torch.Tensor) -> torch.Tensor:
        """The pixels [B, 1, H, W] this layer draws over for each value [B] (its pixels and ground)."""
        return self.mask[value] if self.ground is None else self.mask[value] | self.ground[value]


def ground_anchors(images: torch.Tensor, covered: torch.Tensor, share: float, count: int) -> torch.Tensor:
    """`count` flat pixel indices, evenly spread in raster order over the pixels that at least `share`
    of the images show in their ground colour (pixel (0, 0)'s) where nothing covers them."""
    grounded = ((images == images[:, :, :1, :1]).all(dim=1) & ~covered[:, 0]).sum(dim=0)
    always = (grounded >= share * (~covered[:, 0]).sum(dim=0)).flatten().nonzero()[:, 0]
    if len(always) == 0:
        raise TraitError(
            f"trait_ground: no pixel shows the ground (pixel (0, 0)'s colour) in {share:.0%} of the images"
        )
    return always[torch.linspace(0, len(always) - 1, count).round().long()]


class TraitLayers(nn.Module):
    """The trait layers of G, in drawing order; trait i is picked by latent coordinate i."""

    def __init__(
        self, values: dict[str, list[str]], channels: int, resolution: int, ground: bool = False
    ) -> None:
        super().__init__()
        self.names = list(values)
        self.layers: list[TraitLayer] = nn.ModuleList(  # type: ignore[assignment]
            TraitLayer(len(v), channels, resolution, ground) for v in values.values()
        )
        self.register_buffer("anchors", torch.zeros(ANCHORS, dtype=torch.int64) if ground else None)
        self.anchors: torch.Tensor | None

    def pick(self, z: torch.Tensor) -> torch.Tensor:
        """The values [B, T] the latents [B, z_dim] pick."""
        return torch.stack([layer.pick(z[:, i : i + 1]) for i, layer in enumerate(self.layers)], dim=1)

    def forward(self, image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        ground = self.ground_colour(image) if self.anchors is not None else None
        for i, layer in enumerate(self.layers):
            image = layer(image, values[:, i], ground)
        return image

    def ground_colour(self, image: torch.Tensor) -> torch.Tensor:
        """Each image's [B, C, 1, 1] ground colour: of the anchor pixels' colours (compared as the
        uint8 pixels they become), the one most of them show; the first anchor's on a tie."""
        assert self.anchors is not None
        shown = image.flatten(2)[:, :, self.anchors]  # [B, C, K]
        pixels = torch.round((shown + 1.0) * 127.5)
        same = (pixels[:, :, :, None] == pixels[:, :, None, :]).all(dim=1)  # [B, K, K]
        best = same.sum(dim=2).argmax(dim=1)  # the first of the most shown
        return shown.gather(2, best[:, None, None].expand(-1, shown.shape[1], 1))[..., None]

    @torch.no_grad()
    def fit(self, images: torch.Tensor, codes: torch.Tensor, covered: torch.Tensor, share: float) -> None:
        """Fit from the last drawn to the first: a layer's pixels are counted where the ones drawn
        after it (and `covered`, the label layer's) leave them visible."""
        if self.anchors is not None:
            self.anchors.copy_(ground_anchors(images, covered, share, len(self.anchors)))
        covered = covered.clone()
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            layer.fit(images, codes[:, i], covered, share)
            covered |= layer.covers(codes[:, i])
