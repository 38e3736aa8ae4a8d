"""The models a server holds: name -> runtime + batchers, with `default` always resolving.

A ServedModel offers typed render calls (from seeds, from z, from w, with edits, and the mapping
from z to w). Each owns the choice of batcher and hands back a Job: rows and the batcher that
renders them, which the pipeline submits. Callers never pick a batcher or build columns.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

import numpy as np
import numpy.typing as npt

from artctl.capabilities import Capabilities
from artctl.directions import Directions, DirectionsError, Edit
from artctl.models import W_SPACE_HINT
from artctl.seeds import latents
from artctl_serving.batcher import DynamicBatcher
from artctl_serving.errors import InvalidRequestError, ModelNotFoundError
from artctl_serving.rows import Index, LatentRows, R, SeedRows, StyleRows
from artctl_serving.runtime import ModelRuntime
from artctl_serving.styles import StyleGraphs, cut_mapped, cutoff_rows
from artctl_serving.tally import Tally

DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class Job(Generic[R]):
    """Rows and the batcher that renders them."""

    batcher: DynamicBatcher[R]
    rows: R

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index: Index) -> Job[R]:
        return Job(self.batcher, self.rows.take(index))

    async def submit(self, deadline: float | None) -> np.ndarray:
        """Every row's result, through the batcher's shared batches."""
        return await self.batcher.submit(self.rows, deadline)

    def stream(self, deadline: float | None) -> AsyncGenerator[np.ndarray, None]:
        """The results chunk by chunk, in order (close it to drop the rest)."""
        return self.batcher.stream(self.rows, deadline)


AnyJob = Job[SeedRows] | Job[LatentRows] | Job[StyleRows]


@dataclass
class StyleServed:
    """A model's w-space graphs and their batchers: synthesis (Mix, Interpolate, edits in w) and the
    mapping graph, batched like synthesis on the same inference thread."""

    graphs: StyleGraphs
    batcher: DynamicBatcher[StyleRows]
    mapping: DynamicBatcher[LatentRows]


@dataclass
class ServedModel:
    runtime: ModelRuntime
    batcher: DynamicBatcher[SeedRows]
    styles: StyleServed | None = None
    tally: Tally = field(default_factory=Tally)
    directions: Directions | None = None  # NAME.directions.json, when shipped and fitting
    latents: DynamicBatcher[LatentRows] | None = None  # renders z given directly (no w space)

    @property
    def name(self) -> str:
        return self.runtime.name

    @property
    def caps(self) -> Capabilities:
        return self.runtime.caps

    def batchers(self) -> list[DynamicBatcher[Any]]:
        extra: list[DynamicBatcher[Any]] = [self.styles.batcher, self.styles.mapping] if self.styles else []
        return [self.batcher, *extra, *([self.latents] if self.latents else [])]

    def style(self) -> StyleServed:
        """The w-space graphs, or INVALID_ARGUMENT for a model without them."""
        if self.styles is None:
            raise InvalidRequestError(
                f"model {self.name!r} has no mapping/synthesis graphs: style mixing and walks need a "
                f"StyleGAN-type model exported with its companions; {W_SPACE_HINT}"
            )
        return self.styles

    # -- render calls ------------------------------------------------------------------------------

    def from_seeds(self, rows: SeedRows) -> Job[SeedRows]:
        """Seeds (psi, labels) through the main graph."""
        return Job(self.batcher, rows)

    def from_w(self, ws: npt.NDArray[np.float32]) -> Job[StyleRows]:
        """ws through the synthesis graph (INVALID_ARGUMENT without one)."""
        return Job(self.style().batcher, StyleRows(ws))

    async def map(self, rows: LatentRows, deadline: float | None = None) -> npt.NDArray[np.float32]:
        """ws of latents through the batched mapping graph (truncated by their psi)."""
        return await self.style().mapping.submit(rows, deadline)

    async def map_seeds(self, rows: SeedRows, deadline: float | None = None) -> npt.NDArray[np.float32]:
        """ws of seeds (artctl-latent-v1) through the batched mapping graph."""
        return await self.map(
            LatentRows(latents(rows.seeds, self.caps.z_dim), rows.psi, rows.labels), deadline
        )

    async def from_z(self, rows: LatentRows, deadline: float | None = None) -> AnyJob:
        """Latents given directly: mapped then synthesised with a w space, else the main graph's z."""
        if self.styles is not None:
            return self.from_w(await self.map(rows, deadline))
        assert self.latents is not None, "a model without a w space is served with a latent batcher"
        return Job(self.latents, rows)

    def check_edits(self, edits: Sequence[Edit]) -> None:
        """INVALID_ARGUMENT for edits the model cannot make (before any work is queued)."""
        if not edits:
            return
        if self.directions is None:
            raise InvalidRequestError(
                f"model {self.name!r} has no latent directions (export it again to get NAME.directions.json)"
            )
        try:
            self.directions.check(edits)
        except DirectionsError as exc:
            raise InvalidRequestError(str(exc)) from None

    async def cut_ws(
        self, rows: SeedRows, cutoff: int, deadline: float | None = None
    ) -> npt.NDArray[np.float32]:
        """ws of seeds with their psi on the first `cutoff` layers only, through the batched mapping
        graph (one submission: styles.cutoff_rows)."""
        z = LatentRows(latents(rows.seeds, self.caps.z_dim), rows.psi, rows.labels)
        return cut_mapped(await self.map(cutoff_rows(self.caps, z), deadline), cutoff)

    async def with_edits(
        self,
        rows: SeedRows,
        edits: Sequence[Edit],
        deadline: float | None = None,
        cutoff: int | None = None,
    ) -> AnyJob:
        """Seeds moved along the model's latent directions (artctl-edit-v1): in w, the mapped ws move
        and synthesis renders them; in z, the latents move and the main graph renders them. With a
        truncation `cutoff`, psi holds on the first layers only and edits move those ws."""
        self.check_edits(edits)
        if cutoff is not None:
            ws = await self.cut_ws(rows, cutoff, deadline)
            if edits and self.directions is not None:
                if self.directions.space != "w":
                    raise InvalidRequestError("edits in z cannot follow a truncation cutoff (it acts in w)")
                ws = self.directions.apply(ws, edits)
            return self.from_w(ws)
        if not edits:
            return self.from_seeds(rows)
        directions = self.directions
        assert directions is not None
        if directions.space == "w":
            return self.from_w(directions.apply(await self.map_seeds(rows, deadline), edits))
        moved = directions.apply(latents(rows.seeds, self.caps.z_dim), edits)
        assert self.latents is not None, "directions in z are served with a latent batcher"
        return Job(self.latents, LatentRows(moved, rows.psi, rows.labels))


NAME_SHOWN = 64  # characters of an unknown name echoed back in an error


def shown_name(name: str) -> str:
    """A client's model name as an error may show it: escaped (no control bytes reach a log or a
    terminal) and cut short."""
    text = repr(name[:NAME_SHOWN])
    return text + "…" if len(name) > NAME_SHOWN else text


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self.default_name: str | None = None

    def add(self, model: ServedModel, default: bool = False) -> None:
        """A model named `default` (the embedded one, or any default.onnx) is the default model."""
        if model.name in self._models:
            raise ValueError(f"model name {model.name!r} is taken")
        self._models[model.name] = model
        if default or self.default_name is None or model.name == DEFAULT_ALIAS:
            self.default_name = model.name

    def replace(self, model: ServedModel) -> ServedModel | None:
        """Put `model` in place of the one with its name (or add it); returns the one it replaced."""
        old = self._models.get(model.name)
        self._models[model.name] = model
        if self.default_name is None or model.name == DEFAULT_ALIAS:
            self.default_name = model.name
        return old

    def remove(self, name: str) -> ServedModel | None:
        old = self._models.pop(name, None)
        if self.default_name == name:
            self.default_name = next(iter(self._models), None)
        return old

    def names(self) -> list[str]:
        return list(self._models)

    def resolve(self, name: str) -> str | None:
        """The name of the loaded model a request for `name` reaches ("" and `default` mean the
        default model), or None."""
        if name in ("", DEFAULT_ALIAS):
            return self.default_name
        return name if name in self._models else None

    def get(self, name: str) -> ServedModel:
        if name in ("", DEFAULT_ALIAS):
            if self.default_name is None:
                raise ModelNotFoundError("no default model is loaded")
            return self._models[self.default_name]
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"unknown model {shown_name(name)} (loaded: {known})") from None

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)
