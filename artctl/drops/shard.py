"""A slice of a collection, so one drop can be minted by many workers (a Kubernetes Indexed Job)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from artctl.collection import CollectionConfig
from artctl.drops import MintError


@dataclass(frozen=True)
class Shard:
    """Slice `index` of `count` (0-based, as a Kubernetes Indexed Job numbers its pods)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise MintError(f"--shard must look like i/n (e.g. 0/4), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise MintError(f"--shard {text}: need 0 <= i < n")
        return cls(index, count)

    def ids(self, config: CollectionConfig) -> range:
        first = config.start_index
        lo = first + self.index * config.size // self.count
        hi = first + (self.index + 1) * config.size // self.count
        return range(lo, hi)

    def describe(self, config: CollectionConfig) -> dict[str, int]:
        """The manifest's record of this shard."""
        ids = self.ids(config)
        return {"index": self.index, "count": self.count, "first_id": ids.start, "stop_id": ids.stop}
