"""The tail average: a uniform mean of G_ema's weights over snapshots from the run's plateau.

A pixel-art run's G_ema swings from checkpoint to checkpoint past its peak, and the mean of five of
its checkpoints scored better than any one of them (docs/quality.md, "Checkpoint averages"): stochastic
weight averaging, taken over the EMA. From step `start` on, every `every` steps, G_ema's state joins
the mean; BatchNorm's running statistics are averaged like the weights, and integer buffers (the
BatchNorm counters, the label layer's indices) are the latest snapshot's. The mean is kept as a
running mean in float32, in a fixed order, so a resumed run computes the same bytes as one that never
stopped. It lives in the checkpoint as G_avg.safetensors, which export, metrics and sampling then read
instead of G_ema (`Checkpoint.generator_file`).
"""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


class TailAverage(Generic[M]):
    """The running mean of G_ema's snapshots; `module` holds it once `count` > 0."""

    def __init__(self, G_ema: M, start: int, every: int) -> None:
        self.start, self.every = start, every
        self.module: M = copy.deepcopy(G_ema)
        self.module.eval().requires_grad_(False)
        self.count = 0

    def due(self, step: int) -> bool:
        """Whether the snapshot after the step that makes the count `step` joins the mean."""
        return self.start > 0 and step >= self.start and (step - self.start) % self.every == 0

    @torch.no_grad()
    def add(self, G_ema: nn.Module) -> None:
        """G_ema's state joins the mean: mean += (x - mean) / count, the first snapshot copied."""
        self.count += 1
        source = G_ema.state_dict()
        for name, mean in self.module.state_dict().items():
            x = source[name]
            if self.count == 1 or not mean.is_floating_point():
                mean.copy_(x)
            else:
                mean.add_((x - mean) / self.count)

    def state(self) -> dict[str, Any]:
        """What resuming needs beyond the tensors (start and every are the run's config)."""
        return {"count": self.count}

    def load(self, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None) -> None:
        """Resume the mean from a checkpoint's state and its G_avg tensors (none before the start)."""
        self.count = int(state.get("count", 0))
        if self.count:
            if tensors is None:
                raise ValueError("the checkpoint counts snapshots of the tail average but has no G_avg")
            self.module.load_state_dict(tensors)
