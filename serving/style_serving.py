"""Serving w-space requests: a synthesis-graph batcher per model, and the Mix / walk render paths.

Each model whose card names mapping/synthesis graphs gets a DynamicBatcher of its own around the
synthesis graph, so concurrent Mix and Interpolate requests share batches exactly as Generate's
seeds do (synthesis on the CPU EP is batch-invariant, like the main graph; on CUDA it runs at the
canonical exec batch). The mapping graph is tiny and runs once per request in the inference pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from artctl.latentwalk import FrameSpec
from artctl.stylemix import LayerRange
from serving.batcher import DynamicBatcher
from serving.creative import Walk, mixed_ws, walk_ws
from serving.runtime import ModelRuntime
from serving.styles import StyleGraphs
from serving.validation import InvalidRequestError

T = TypeVar("T")


@dataclass
class StyleModel:
    graphs: StyleGraphs
    batcher: DynamicBatcher
    executor: Executor

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def synthesize(self, ws: npt.NDArray[np.float32], deadline: float | None) -> npt.NDArray[np.uint8]:
        """Render ws through the shared synthesis batches."""
        # The batcher slices and concatenates its first array along axis 0 and hands it to the
        # render function untouched; here those rows are ws, not seeds.
        return await self.batcher.submit(cast("npt.NDArray[np.uint64]", ws), deadline=deadline)

    async def mix(
        self,
        content: npt.NDArray[np.uint64],
        style: npt.NDArray[np.uint64],
        layers: LayerRange,
        psi: npt.NDArray[np.float32] | None,
        labels: npt.NDArray[np.int64] | None,
        deadline: float | None,
    ) -> npt.NDArray[np.uint8]:
        ws = await self._call(mixed_ws, self.graphs, content, style, layers, psi, labels)
        return await self.synthesize(ws, deadline)

    async def walk(
        self,
        seeds: list[int],
        frames: int,
        space: str,
        loop: bool,
        psi: float | None,
        label: int | None,
        chunk: int,
        deadline: float | None,
    ) -> AsyncIterator[tuple[list[FrameSpec], list[int], npt.NDArray[np.uint8]]]:
        """Frames in order, `chunk` at a time; every chunk is queued at once so they render while
        earlier ones are being sent."""
        plan: Walk = await self._call(walk_ws, self.graphs, seeds, frames, space, loop, psi, label)
        starts = range(0, frames, chunk)
        tasks = [asyncio.ensure_future(self.synthesize(plan.ws[s : s + chunk], deadline)) for s in starts]
        try:
            for s, task in zip(starts, tasks):
                yield plan.specs[s : s + chunk], plan.seeds, await task
        finally:
            for task in tasks:
                task.cancel()


def synthesis_render(graphs: StyleGraphs) -> Callable[..., npt.NDArray[np.uint8]]:
    """The batcher's render function: rows of ws in, images out (psi and labels unused)."""

    def render(rows: npt.NDArray[Any], _psi: Any = None, _labels: Any = None) -> npt.NDArray[np.uint8]:
        return graphs.synthesize(np.ascontiguousarray(rows, dtype=np.float32))

    return render


class StyleServing:
    """The style models of the served models, keyed by (name, SHA-256) so reloads never mix them up."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], StyleModel] = {}

    def add(self, runtime: ModelRuntime, model: StyleModel) -> None:
        self._models[(runtime.name, runtime.sha256)] = model

    def remove(self, runtime: ModelRuntime) -> StyleModel | None:
        return self._models.pop((runtime.name, runtime.sha256), None)

    def get(self, runtime: ModelRuntime) -> StyleModel:
        found = self._models.get((runtime.name, runtime.sha256))
        if found is None:
            raise InvalidRequestError(
                f"model {runtime.name!r} has no mapping/synthesis graphs: style mixing and walks need a "
                "StyleGAN-type model exported with its companions"
            )
        return found

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._models.values()))
