"""Quality that FID cannot see in pixel art: exact palette colours and exact parts.

For any folder of pixel art with a palette: the share of off-palette pixels, before and after the
snap the exported graph applies. For the Nouns art, also:
- noggles exact: the share of samples whose glasses region equals one of the glasses parts, pixel
  for pixel over the part's opaque mask (real compositions score 1.0: glasses are drawn last);
- label fidelity: the share whose nearest glasses part (fewest differing mask pixels) is the one
  the sample was asked for;
- heads copied: the share whose head equals one of the head parts exactly, outside every glasses
  mask (the rest are novel heads or broken ones; there is no target, it says how much G copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.palette import pack_colours, palette_array, snap

Images = npt.NDArray[np.uint8]  # [N, H, W, C]


def off_palette_share(images: Images, palette: npt.NDArray[np.uint8]) -> float:
    """The share of pixels whose colour is not in the palette."""

    pixels = images.reshape(-1, images.shape[-1])
    return float(1.0 - np.isin(pack_colours(pixels), pack_colours(palette)).mean())


@dataclass(frozen=True)
class PartStack:
    """The parts of one trait as stacked masks [P, H, W] and RGB colours [P, H, W, 3]."""

    names: list[str]
    masks: npt.NDArray[np.bool_]
    colours: npt.NDArray[np.uint8]

    @classmethod
    def of(cls, parts: Sequence[Any]) -> PartStack:
        return cls(
            names=[p.name for p in parts],
            masks=np.stack([p.mask for p in parts]),
            colours=np.stack([p.rgba[..., :3] for p in parts]),
        )

    def compare(
        self, images: Images, exclude: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """[N, P] twice: over each part's mask (less `exclude`), the pixels where an image differs
        from the part, and the mean squared colour distance (which ranks near misses)."""
        shape = (len(images), len(self.names))
        differing, distance = np.zeros(shape, dtype=np.int64), np.full(shape, np.inf)
        rgb = images[..., :3].astype(np.int32)
        for p in range(len(self.names)):
            mask = self.masks[p] if exclude is None else self.masks[p] & ~exclude
            if not mask.any():
                continue
            delta = rgb[:, mask] - self.colours[p][mask][None].astype(np.int32)
            differing[:, p] = (delta != 0).any(axis=2).sum(axis=1)
            distance[:, p] = (delta**2).sum(axis=2).mean(axis=1)
        return differing, distance


def nouns_scores(
    images: Images, asked: Sequence[str] | None, glasses: PartStack, heads: PartStack
) -> dict[str, Any]:
    """Noggles exact, label fidelity (when `asked` names each sample's glasses) and heads copied."""
    wrong, distance = glasses.compare(images)
    nearest = distance.argmin(axis=1)
    out: dict[str, Any] = {"noggles_exact": float((wrong.min(axis=1) == 0).mean())}
    if asked is not None:
        index = {name: i for i, name in enumerate(glasses.names)}
        wanted = np.array([index.get(name, -1) for name in asked])
        out["label_fidelity"] = float((nearest == wanted).mean())
        out["noggles_exact_as_asked"] = float(
            (wrong[np.arange(len(images)), np.maximum(wanted, 0)] == 0).mean()
        )
    covered: npt.NDArray[np.bool_] = np.asarray(glasses.masks.any(axis=0))
    out["heads_copied"] = float((heads.compare(images, exclude=covered)[0].min(axis=1) == 0).mean())
    return out


def pixel_art_scores(
    images: Images, palette: Sequence[str] | None, asked: Sequence[str] | None = None, art: Any = None
) -> dict[str, Any]:
    """The palette metrics (and the Nouns ones when `art` is given), on raw and on snapped pixels."""
    out: dict[str, Any] = {"n": len(images)}
    views = {"raw": images}
    if palette:
        pal = palette_array(palette)
        if pal.shape[1] < images.shape[-1]:  # an RGB palette on an RGBA model: the snap keeps alpha
            images = np.ascontiguousarray(images[..., : pal.shape[1]])
            views["raw"] = images
        out["palette_size"] = len(pal)
        out["off_palette_raw"] = off_palette_share(images, pal)
        views["snapped"] = snap(images, pal)
        out["off_palette_snapped"] = off_palette_share(views["snapped"], pal)
    if art is not None:
        glasses, heads = PartStack.of(art.parts["glasses"]), PartStack.of(art.parts["head"])
        for view, pixels in views.items():
            for key, value in nouns_scores(pixels, asked, glasses, heads).items():
                out[f"{key}_{view}"] = value
    return out
