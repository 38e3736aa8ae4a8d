"""The response cache: encoded images by everything that decides their bytes, shared by every API.

An image is a pure function of (model bytes, seed, psi, label, edit) and its encoding of the
format and scale, so a cached reply is the reply a fresh render would give, byte for byte (tests check it).
That is what makes caching safe here, and why the key holds the model's SHA-256 rather than its
name: a hot-reloaded model never serves its predecessor's pictures. Bounded in bytes, least
recently used first out; the event loop is its only user, so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

CacheKey = tuple[Hashable, ...]


class Sized(Protocol):
    @property
    def data(self) -> bytes: ...


Item = TypeVar("Item", bound=Sized)


class ImageCache(Generic[Item]):
    def __init__(self, max_bytes: int, registry: CollectorRegistry | None = None) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[CacheKey, Item] = OrderedDict()
        r = registry or CollectorRegistry()
        self.lookups = Counter(
            "artctl_cache_lookups", "Image cache lookups by result", ["result"], registry=r
        )
        self.evictions = Counter(
            "artctl_cache_evictions", "Images dropped to stay within the bound", registry=r
        )
        Gauge("artctl_cache_bytes", "Bytes of encoded images held", registry=r).set_function(
            lambda: self.bytes
        )
        Gauge("artctl_cache_entries", "Images held", registry=r).set_function(lambda: len(self._items))

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._items

    def get(self, key: CacheKey) -> Item | None:
        item = self._items.get(key)
        self.lookups.labels("hit" if item is not None else "miss").inc()
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: CacheKey, item: Item) -> None:
        size = len(item.data)
        if size > self.max_bytes or key in self._items:
            return
        self._items[key] = item
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= len(old.data)
            self.evictions.inc()

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


def row_keys(
    model_sha256: str,
    seeds: Sequence[int] | npt.NDArray[np.uint64],
    psi: npt.NDArray[np.float32] | None,
    labels: npt.NDArray[np.int64] | None,
    fmt: str,
    edit: Hashable = (),
    scale: int = 1,
    cutoff: int | None = None,
) -> list[CacheKey]:
    """One key per row: the model's hash and every input that reaches the graph, as exact values
    (psi as its float32 bytes, the edit as artctl_serving.directions.edit_key gives it, the truncation
    cutoff), and the encoding (format and upscale: the same pixels at two scales are two different
    replies)."""
    return [
        (
            model_sha256,
            int(seeds[i]),
            None if psi is None else psi[i].tobytes(),
            None if labels is None else int(labels[i]),
            edit,
            cutoff,
            fmt,
            scale,
        )
        for i in range(len(seeds))
    ]


def mix_keys(
    model_sha256: str,
    content: Sequence[int] | npt.NDArray[np.uint64],
    style: Sequence[int] | npt.NDArray[np.uint64],
    layers: tuple[int, int],
    psi: npt.NDArray[np.float32] | None,
    labels: npt.NDArray[np.int64] | None,
    fmt: str,
    scale: int = 1,
) -> list[CacheKey]:
    """One key per style-mixed pair, the same for gRPC Mix and the HTTP mix URL, so each finds what
    the other rendered: the model's hash, both seeds, the layer range, psi (float32 bytes), the
    label and the encoding."""
    return [
        (
            "mix",
            model_sha256,
            int(content[i]),
            int(style[i]),
            *layers,
            None if psi is None else psi[i].tobytes(),
            None if labels is None else int(labels[i]),
            fmt,
            scale,
        )
        for i in range(len(content))
    ]
