"""Where mint and verify get pixels: the Renderer protocol, and the one that asks servers.

Every renderer gives the same pixels for the same (model, seed, psi, label) under the same render
profile; the profile it reports goes into the manifest, so a reader knows what produced the drop.
The in-process renderer (ONNX Runtime in this process) lives with the server code, in
artctl_serving.local, so the core needs no onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class RenderError(RuntimeError):
    """The renderer could not be used or returned something other than what was asked."""


@dataclass
class Rendered:
    seed: int
    png: bytes
    pixel_sha256: str
    pixels: npt.NDArray[np.uint8] | None = None  # given by in-process renderers (saves a PNG decode)
    file: bytes | None = None  # the drop's image file (scale, format), set by drops.tokens.render_chunk


Edits = Sequence[tuple[int, float]]  # (direction, amount), artctl-edit-v1


class Renderer(Protocol):
    """Something that turns seeds (and labels, for conditional models; edits along the model's
    latent directions, for curated drops) into PNGs."""

    def render(
        self,
        seeds: Sequence[int],
        psi: float | None,
        labels: Sequence[int] | None = None,
        edits: Edits = (),
        cutoff: int | None = None,
    ) -> list[Rendered]: ...

    def profile(self) -> dict[str, Any]: ...

    def model_card(self) -> dict[str, Any]: ...


class ServerRenderer:
    """Renders through GeneratorClient (round robin over servers, retries on UNAVAILABLE)."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        cards = {c["name"]: c for c in client.list_models()}
        if model in ("", "default"):
            card = next(iter(cards.values()), None)  # list_models puts the default first
            if card is None:
                raise RenderError("the server has no models")
        elif model not in cards:
            raise RenderError(f"server has no model {model!r} (it has: {', '.join(sorted(cards)) or 'none'})")
        else:
            card = cards[model]
        self._card: dict[str, Any] = card
        self._profile: dict[str, Any] = dict(card.get("profile") or {})

    def render(
        self,
        seeds: Sequence[int],
        psi: float | None,
        labels: Sequence[int] | None = None,
        edits: Edits = (),
        cutoff: int | None = None,
    ) -> list[Rendered]:
        result = self.client.generate(
            seeds,
            model=self.model,
            psi=psi,
            labels=list(labels or []),
            fmt="png",
            edits=list(edits),
            truncation_cutoff=cutoff or 0,
        )
        if [a.seed for a in result.artworks] != list(seeds):
            raise RenderError("server returned artworks for other seeds than requested")
        # A drop must come from one model: a server mid-rollout, reloaded, or serving another file
        # under the same name would otherwise mix models under a manifest that names one.
        expected, got = self._card.get("sha256", ""), result.profile.get("model_sha256", "")
        if expected and got != expected:
            raise RenderError(
                f"server {result.target} rendered with model {got[:12]}…, but this drop uses "
                f"{expected[:12]}…; make every server serve the same model file, then re-run "
                "(finished tokens are kept)"
            )
        self._profile = result.profile
        return [Rendered(a.seed, a.image, a.pixel_sha256) for a in result.artworks]

    def profile(self) -> dict[str, Any]:
        return dict(self._profile)

    def model_card(self) -> dict[str, Any]:
        return {k: v for k, v in self._card.items() if k not in ("metadata", "profile")}
