"""What a model can do, said once: the one typed answer every layer reads.

Does it take psi, or labels? Has it w-space graphs, and how many ws? Where do its directions live?
Which palette does it snap to, and at what size does it draw? Before this contract each caller
decided for itself (the exporter probed the network's attributes, the server read graph input
names, the card carried flags), and adding an input meant edits in four packages.

`Capabilities` is made in exactly two places:
- at export, from the network's declared interface (artctl_trainer.networks.capabilities), and
  written into the model card;
- at load, from the card (`Capabilities.from_card`), checked against the graph by the server.
Everything else reads it. Light on purpose: no torch, no onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from artctl.modelcard import ModelCard, ModelCardError

Space = Literal["z", "w"]
Psi = npt.NDArray[np.float32] | None
Labels = npt.NDArray[np.int64] | None


@dataclass(frozen=True)
class WSpace:
    """A StyleGAN-type model's intermediate latent space: num_ws vectors of w_dim per image."""

    num_ws: int
    w_dim: int


@dataclass(frozen=True)
class Capabilities:
    """A model's inputs, spaces and output, as its card and its network both say them."""

    architecture: str
    z_dim: int
    resolution: int  # native size: what the graph draws, and what pixel hashes cover
    channels: int
    label_names: tuple[str, ...] = ()  # empty: unconditional
    psi: bool = False  # a truncation input (StyleGAN-type)
    default_psi: float = 1.0
    w_space: WSpace | None = None  # mapping and synthesis graphs can exist
    palette: tuple[str, ...] = ()  # the in-graph snap's colours (artctl-palette-v1); empty: no snap

    @property
    def conditional(self) -> bool:
        return bool(self.label_names)

    @property
    def directions_space(self) -> Space:
        """Where SeFa finds this model's latent directions, and where edits move it."""
        return "w" if self.w_space is not None else "z"

    @property
    def truncation_cutoff(self) -> bool:
        """psi may be applied to the first k ws only (a w space: mapping and synthesis graphs)."""
        return self.w_space is not None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The main graph's inputs, in order: z, then psi and label where the model has them."""
        return ("z", *(("psi",) if self.psi else ()), *(("label",) if self.conditional else ()))

    def image_shape(self, scale: int = 1) -> tuple[int, int, int]:
        """(height, width, channels) of an image delivered `scale` times the native size."""
        return (self.resolution * scale, self.resolution * scale, self.channels)

    def conditioning(self, n: int, psi: Psi = None, labels: Labels = None) -> dict[str, np.ndarray]:
        """The psi and label feeds of n rows: the default psi and label 0 where not given."""
        feeds: dict[str, np.ndarray] = {}
        if self.psi:
            feeds["psi"] = psi if psi is not None else np.full(n, self.default_psi, dtype=np.float32)
        if self.conditional:
            feeds["label"] = labels if labels is not None else np.zeros(n, dtype=np.int64)
        return feeds

    def card_fields(self) -> dict[str, Any]:
        """The model card fields this contract decides (the card format itself is unchanged)."""
        return {
            "architecture": self.architecture,
            "resolution": self.resolution,
            "channels": self.channels,
            "z_dim": self.z_dim,
            "label_names": list(self.label_names),
            "default_psi": self.default_psi if self.psi else 1.0,
            "has_psi": self.psi,
            "has_label": self.conditional,
            "palette": list(self.palette),
        }

    def card_extra(self) -> dict[str, str]:
        """The card's `extra` entries this contract owns (the w space's size)."""
        if self.w_space is None:
            return {}
        return {"num_ws": str(self.w_space.num_ws), "w_dim": str(self.w_space.w_dim)}

    @classmethod
    def from_card(cls, card: ModelCard) -> Capabilities:
        """The contract of an exported model, read from its card (ModelCardError when inconsistent)."""
        if card.has_label and not card.label_names:
            raise ModelCardError("has_label is true but label_names is empty")
        w_space = None
        if "num_ws" in card.extra or "w_dim" in card.extra:
            try:
                w_space = WSpace(int(card.extra["num_ws"]), int(card.extra["w_dim"]))
            except (KeyError, ValueError) as exc:
                raise ModelCardError(f"the card's num_ws/w_dim are missing or not integers ({exc})") from None
        return cls(
            architecture=card.architecture,
            z_dim=card.z_dim,
            resolution=card.resolution,
            channels=card.channels,
            label_names=tuple(card.label_names) if card.has_label else (),
            psi=card.has_psi,
            default_psi=card.default_psi,
            w_space=w_space if card.has_psi else None,
            palette=tuple(card.palette),
        )
