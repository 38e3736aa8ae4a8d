"""The rows a batcher carries: one typed kind per render function, never string-keyed dicts.

A request becomes rows once it is validated (artctl_serving.requests): seeds with their psi and
labels, latents given directly (walk frames, edits in z), or ws (style mixing, walks and edits in
w). The batcher cuts rows into chunks (`take`) and joins chunks into one batch (`join`) without
knowing what they hold; rows whose `layout` differs (psi given or not) never share a batch. A render
function takes exactly one kind, so handing it another is a type error, not a KeyError in the
inference thread.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

Index = slice | npt.NDArray[np.intp]
R = TypeVar("R", bound="Rows")


class Rows(Protocol):
    """What the batcher needs of any rows: a length, a part, a join and a layout key."""

    def __len__(self) -> int: ...

    def take(self: R, index: Index) -> R: ...

    def join(self: R, others: Sequence[R]) -> R: ...

    @property
    def layout(self) -> Hashable: ...


def _take(column: np.ndarray | None, index: Index) -> np.ndarray | None:
    return None if column is None else column[index]


def _join(columns: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if columns[0] is None:
        return None
    return np.concatenate([c for c in columns if c is not None])


def _length(*columns: np.ndarray | None) -> int:
    lengths = {len(c) for c in columns if c is not None}
    if len(lengths) != 1:
        raise ValueError(f"rows must have one common length, got {sorted(lengths)}")
    return lengths.pop()


@dataclass(frozen=True)
class SeedRows:
    """Validated generator inputs: one row per image, z drawn from each seed (artctl-latent-v1)."""

    seeds: npt.NDArray[np.uint64]
    psi: npt.NDArray[np.float32] | None = None
    labels: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        _length(self.seeds, self.psi, self.labels)

    def __len__(self) -> int:
        return len(self.seeds)

    def take(self, index: Index) -> SeedRows:
        return SeedRows(self.seeds[index], _take(self.psi, index), _take(self.labels, index))

    def join(self, others: Sequence[SeedRows]) -> SeedRows:
        parts = [self, *others]
        seeds = np.concatenate([p.seeds for p in parts])
        return SeedRows(seeds, _join([p.psi for p in parts]), _join([p.labels for p in parts]))

    @property
    def layout(self) -> Hashable:
        return ("seeds", self.psi is None, self.labels is None)

    def psi_at(self, i: int) -> float | None:
        return None if self.psi is None else float(self.psi[i])

    def label_at(self, i: int) -> int | None:
        return None if self.labels is None else int(self.labels[i])


@dataclass(frozen=True)
class LatentRows:
    """Latents given directly (not drawn from seeds), with their psi and labels."""

    z: npt.NDArray[np.float32]
    psi: npt.NDArray[np.float32] | None = None
    labels: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        _length(self.z, self.psi, self.labels)

    def __len__(self) -> int:
        return len(self.z)

    def take(self, index: Index) -> LatentRows:
        return LatentRows(self.z[index], _take(self.psi, index), _take(self.labels, index))

    def join(self, others: Sequence[LatentRows]) -> LatentRows:
        parts = [self, *others]
        z = np.concatenate([p.z for p in parts])
        return LatentRows(z, _join([p.psi for p in parts]), _join([p.labels for p in parts]))

    @property
    def layout(self) -> Hashable:
        return ("z", self.z.shape[1:], self.psi is None, self.labels is None)


@dataclass(frozen=True)
class StyleRows:
    """ws [B, num_ws, w_dim] for a synthesis graph."""

    ws: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.ws)

    def take(self, index: Index) -> StyleRows:
        return StyleRows(self.ws[index])

    def join(self, others: Sequence[StyleRows]) -> StyleRows:
        return StyleRows(np.concatenate([self.ws, *(o.ws for o in others)]))

    @property
    def layout(self) -> Hashable:
        return ("ws", self.ws.shape[1:])
