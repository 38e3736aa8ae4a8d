"""The in-process renderer: mint and verify render with ONNX Runtime in this process, no server.

It implements artctl.drops.render.Renderer with the same runtime, checks and encoder the server
uses, so a drop minted locally has the pixels a CPU server would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from artctl.drops.render import Rendered
from artctl.profile import SERVING_LEVEL
from serving.pipeline import encode_image
from serving.requests import check_labels, check_psi
from serving.runtime import Engine, load_model


class LocalRenderer:
    """In-process ONNX Runtime (needs the serve extra); the same pixels as a CPU server."""

    def __init__(self, model_path: Path, threads: int = 0, level: str = SERVING_LEVEL) -> None:
        self.runtime = load_model(Path(model_path), engine=Engine.choose("cpu", threads, level=level))

    def render(
        self, seeds: Sequence[int], psi: float | None, labels: Sequence[int] | None = None
    ) -> list[Rendered]:
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
