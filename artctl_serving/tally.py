"""Per-model counts in Triton's terms (ModelStatistics): kept apart from Prometheus, whose
histograms cannot answer "how many requests, how many nanoseconds" exactly."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Tally:
    """What a model served, for Triton's ModelStatistics: requests by outcome, and the time spent
    queued and computing (nanoseconds), as Triton's tools read them."""

    success: int = 0
    success_ns: int = 0
    fail: int = 0
    fail_ns: int = 0
    queue: int = 0  # queued chunks that reached a batch
    queue_ns: int = 0
    executions: int = 0  # inference calls (batches)
    compute_ns: int = 0
    images: int = 0
    last_inference_ms: int = 0
    batch_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # size -> (count, ns)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Counts the request run inside as a success, or as a failure when it raises."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.fail += 1
            self.fail_ns += int((time.perf_counter() - started) * 1e9)
            raise
        self.success += 1
        self.success_ns += int((time.perf_counter() - started) * 1e9)

    def batch(self, size: int, seconds: float, waits: list[float]) -> None:
        ns = int(seconds * 1e9)
        self.executions += 1
        self.compute_ns += ns
        self.images += size
        self.queue += len(waits)
        self.queue_ns += int(sum(waits) * 1e9)
        self.last_inference_ms = int(time.time() * 1000)
        count, total = self.batch_sizes.get(size, (0, 0))
        self.batch_sizes[size] = (count + 1, total + ns)
