"""Where mint and verify get pixels: one or more servers (via the client) or in-process ONNX Runtime.

Both give the same pixels for the same (model, seed, psi, label); the render profile they report
goes into the manifest so a reader knows what produced the drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


class Renderer(Protocol):
    """Something that turns seeds (and labels, for conditional models) into PNGs."""

    def render(
        self, seeds: Sequence[int], psi: float | None, labels: Sequence[int] | None = None
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
        self, seeds: Sequence[int], psi: float | None, labels: Sequence[int] | None = None
    ) -> list[Rendered]:
        result = self.client.generate(seeds, model=self.model, psi=psi, labels=list(labels or []), fmt="png")
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


class LocalRenderer:
    """In-process ONNX Runtime (needs the serve extra); the same pixels as a CPU server."""

    def __init__(self, model_path: Path, threads: int = 0) -> None:
        from serving.runtime import load_model  # lazy: the core does not need onnxruntime

        self.runtime = load_model(Path(model_path), threads=threads)

    def render(
        self, seeds: Sequence[int], psi: float | None, labels: Sequence[int] | None = None
    ) -> list[Rendered]:
        from serving.encoding import encode_image
        from serving.validation import check_labels, check_psi

        arr = np.asarray(seeds, dtype=np.uint64)
        psi_arr = check_psi(self.runtime.card, None if psi is None else [psi], len(arr))
        label_arr = check_labels(self.runtime.card, list(labels or []), len(arr))
        images = self.runtime.render(arr, psi_arr, label_arr)
        out = []
        for seed, img in zip(seeds, images):
            enc = encode_image(img, "png")
            out.append(Rendered(int(seed), enc.data, enc.pixel_sha256, img))
        return out

    def profile(self) -> dict[str, Any]:
        return dict(self.runtime.profile.as_dict())

    def model_card(self) -> dict[str, Any]:
        return {**self.runtime.card.to_json(), "sha256": self.runtime.sha256}


def open_renderer(model: str, servers: Sequence[str], local: bool, base_dir: Path | None = None) -> Renderer:
    """The renderer the CLI flags ask for; with --local, `model` is an .onnx path (relative paths are
    tried against the config's folder first, then the current one)."""
    if local == bool(servers):
        raise RenderError("choose where to render: --server HOST:PORT (one or more) or --local")
    if local:
        path = Path(model)
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if not path.is_file():
            raise RenderError(
                f"--local needs `model` to be an .onnx file, and {str(path)!r} is not one "
                "(set model in the config, or pass --model)"
            )
        return LocalRenderer(path)
    from artctl.client import GeneratorClient

    return ServerRenderer(GeneratorClient(list(servers)), model)
