"""The in-process renderer: mint and verify render with ONNX Runtime in this process, no server.

It implements artctl.drops.render.Renderer with the same runtime, checks and encoder the server
uses, so a drop minted locally has the pixels a CPU server would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.directions import Directions, DirectionsError, directions_path, load_directions
from artctl.drops.render import Edits, Rendered, RenderError
from artctl.modelcard import file_sha256
from artctl.profile import SERVING_LEVEL
from artctl.seeds import latents
from artctl_serving.errors import InvalidRequestError, NoStyleGraphsError
from artctl_serving.pipeline import encode_image
from artctl_serving.requests import check_cutoff, check_labels, check_psi
from artctl_serving.runtime import Engine, load_model
from artctl_serving.styles import StyleGraphs, load_style_graphs


class LocalRenderer:
    """In-process ONNX Runtime (needs the serve extra); the same pixels as a CPU server."""

    def __init__(self, model_path: Path, threads: int = 0, level: str = SERVING_LEVEL) -> None:
        self.path = Path(model_path)
        # named by its file, as a server names it (the embedded emoji model's card still says default)
        self.runtime = load_model(
            self.path, name=self.path.stem, engine=Engine.choose("cpu", threads, level=level)
        )
        self._directions: Directions | None = None
        self._graphs: StyleGraphs | None = None

    def directions(self) -> Directions:
        """The model's latent directions (NAME.directions.json), loaded on first use."""
        if self._directions is None:
            try:
                self._directions = load_directions(directions_path(self.path), self.runtime.sha256)
            except DirectionsError as exc:
                raise RenderError(f"edits need the model's directions: {exc}") from None
            if self._directions.space == "w":
                self._graphs = load_style_graphs(self.runtime)
        return self._directions

    def _edited(
        self, seeds: npt.NDArray[np.uint64], psi: Any, labels: Any, edits: Edits
    ) -> npt.NDArray[np.uint8]:
        """As the server renders edits (ServedModel.with_edits): w moved and synthesised, or z moved."""
        directions = self.directions()
        if self._graphs is not None:
            return self._graphs.synthesize(
                directions.apply(self._graphs.map_seeds(seeds, psi, labels), edits)
            )
        moved = directions.apply(latents(seeds, self.runtime.caps.z_dim), edits)
        return self.runtime.render_latents(moved, psi, labels)

    def _cut(
        self, seeds: npt.NDArray[np.uint64], psi: Any, labels: Any, edits: Edits, cutoff: int
    ) -> npt.NDArray[np.uint8]:
        """As the server renders a truncation cutoff (ServedModel.cut_ws): psi on the first ws only."""
        try:
            check_cutoff(self.runtime.caps, cutoff, self.runtime.name)
            graphs = self._graphs or load_style_graphs(self.runtime)
        except (InvalidRequestError, NoStyleGraphsError) as exc:
            raise RenderError(str(exc)) from None
        self._graphs = graphs
        ws = graphs.cut_seeds(seeds, psi, labels, cutoff)
        if edits:
            directions = self.directions()
            if directions.space != "w":
                raise RenderError("edits in z cannot follow a truncation cutoff (it acts in w)")
            ws = directions.apply(ws, edits)
        return graphs.synthesize(ws)

    def render(
        self,
        seeds: Sequence[int],
        psi: float | None,
        labels: Sequence[int] | None = None,
        edits: Edits = (),
        cutoff: int | None = None,
    ) -> list[Rendered]:
        arr = np.asarray(seeds, dtype=np.uint64)
        psi_arr = check_psi(self.runtime.caps, None if psi is None else [psi], len(arr), self.runtime.name)
        label_arr = check_labels(self.runtime.caps, list(labels or []), len(arr), self.runtime.name)
        if cutoff is not None:
            images = self._cut(arr, psi_arr, label_arr, edits, cutoff)
        elif edits:
            images = self._edited(arr, psi_arr, label_arr, edits)
        else:
            images = self.runtime.render(arr, psi_arr, label_arr)
        out = []
        for seed, img in zip(seeds, images):
            enc = encode_image(img, "png")
            out.append(Rendered(int(seed), enc.data, enc.pixel_sha256, img))
        return out

    def profile(self) -> dict[str, Any]:
        return dict(self.runtime.profile.as_dict())

    def model_card(self) -> dict[str, Any]:
        card = {**self.runtime.card.to_json(), "sha256": self.runtime.sha256}
        where = directions_path(self.path)
        if where.is_file():
            card["directions_sha256"] = file_sha256(where)
        return card
