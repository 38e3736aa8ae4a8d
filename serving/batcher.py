"""Dynamic batching: many small requests become few large inference calls.

Requests are cut into chunks of at most max_batch images and queued FIFO. A worker takes the oldest
chunk, waits up to max_delay for more, runs one inference call in a worker thread (the event loop
never blocks), and hands each chunk its slice of the result. Because every image depends only on its
own seed (and the CPU EP is batch-invariant), which companions a seed is batched with never changes
its pixels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RenderFn = Callable[
    [npt.NDArray[np.uint64], "npt.NDArray[np.float32] | None", "npt.NDArray[np.int64] | None"],
    npt.NDArray[np.uint8],
]


class QueueFullError(RuntimeError):
    """The bounded queue cannot take the request now (RESOURCE_EXHAUSTED)."""


class DeadlineExpiredError(RuntimeError):
    """The request's deadline passed before its images were computed (DEADLINE_EXCEEDED)."""


class BatcherClosedError(RuntimeError):
    """The server is shutting down and admits no new work (UNAVAILABLE)."""


@dataclass
class _Chunk:
    seeds: npt.NDArray[np.uint64]
    psi: npt.NDArray[np.float32] | None
    labels: npt.NDArray[np.int64] | None
    future: asyncio.Future[npt.NDArray[np.uint8]]
    deadline: float | None  # time.monotonic() seconds
    enqueued: float = 0.0  # time.monotonic() when admitted


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    dropped: int = 0


class DynamicBatcher:
    def __init__(
        self,
        render: RenderFn,
        executor: Executor,
        max_batch: int = 64,
        max_delay_s: float = 0.002,
        queue_size: int = 4096,
        on_batch: Callable[[int, float, list[float]], None] | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_delay_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and max_delay >= 0")
        self._render = render
        self._executor = executor
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Chunk] = asyncio.Queue()
        self._pending_images = 0
        self._worker: asyncio.Task[None] | None = None
        self._carry: _Chunk | None = None  # taken from the queue but too big for the last batch
        self._closed = False
        self.stats = BatchStats()

    @property
    def queue_depth(self) -> int:
        return self._pending_images

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="artctl-batcher")

    async def close(self) -> None:
        """Stop admitting; finish every queued chunk; then stop the worker."""
        self._closed = True
        if self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(
        self,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None = None,
        labels: npt.NDArray[np.int64] | None = None,
        deadline: float | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Render `seeds` (already validated) through the shared batches; returns [N, H, W, C]."""
        if self._closed:
            raise BatcherClosedError("server is shutting down")
        n = len(seeds)
        if self._pending_images + n > self.queue_size:
            raise QueueFullError(
                f"queue full ({self._pending_images} images waiting, limit {self.queue_size})"
            )
        loop = asyncio.get_running_loop()
        chunks = []
        for start in range(0, n, self.max_batch):
            end = start + self.max_batch
            chunk = _Chunk(
                seeds=seeds[start:end],
                psi=None if psi is None else psi[start:end],
                labels=None if labels is None else labels[start:end],
                future=loop.create_future(),
                deadline=deadline,
                enqueued=time.monotonic(),
            )
            chunks.append(chunk)
            self._queue.put_nowait(chunk)
        self._pending_images += n
        try:
            parts = await asyncio.gather(*(c.future for c in chunks))
        except BaseException:
            for c in chunks:
                c.future.cancel()  # cancelled chunks are dropped before compute
            raise
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _take_live(self, chunk: _Chunk, now: float) -> bool:
        """False (and the chunk resolved) for cancelled or expired work, which is never computed."""
        if chunk.future.done():
            self._pending_images -= len(chunk.seeds)
            self.stats.dropped += len(chunk.seeds)
            self._queue.task_done()
            return False
        if chunk.deadline is not None and now >= chunk.deadline:
            chunk.future.set_exception(DeadlineExpiredError("deadline passed while queued"))
            self._pending_images -= len(chunk.seeds)
            self.stats.dropped += len(chunk.seeds)
            self._queue.task_done()
            return False
        return True

    async def _next_chunk(self, timeout: float | None) -> _Chunk | None:
        """The chunk that was set aside last time, else the queue's oldest (None on timeout)."""
        if self._carry is not None:
            chunk, self._carry = self._carry, None
            return chunk
        if timeout is None:
            return await self._queue.get()
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if timeout <= 0:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout=timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[_Chunk]:
        """FIFO: the oldest live chunk, then more until max_batch images or max_delay has passed."""
        batch: list[_Chunk] = []
        size = 0
        give_up = None
        while size < self.max_batch:
            chunk = await self._next_chunk(None if give_up is None else give_up - time.monotonic())
            if chunk is None:
                break
            if not self._take_live(chunk, time.monotonic()):
                continue
            if size + len(chunk.seeds) > self.max_batch:
                self._carry = chunk  # does not fit: it opens the next batch, keeping FIFO order
                break
            batch.append(chunk)
            size += len(chunk.seeds)
            if give_up is None:
                give_up = time.monotonic() + self.max_delay_s
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            seeds = np.concatenate([c.seeds for c in batch])
            psi = (
                None if batch[0].psi is None else np.concatenate([c.psi for c in batch if c.psi is not None])
            )
            labels = (
                None
                if batch[0].labels is None
                else np.concatenate([c.labels for c in batch if c.labels is not None])
            )
            started = time.perf_counter()
            now = time.monotonic()
            waits = [now - c.enqueued for c in batch]
            try:
                images = await loop.run_in_executor(self._executor, self._render, seeds, psi, labels)
            except Exception as exc:
                for c in batch:
                    if not c.future.done():
                        c.future.set_exception(exc)
            else:
                offset = 0
                for c in batch:
                    k = len(c.seeds)
                    if not c.future.done():
                        c.future.set_result(images[offset : offset + k])
                    offset += k
                self.stats.batches += 1
                self.stats.images += len(seeds)
                if self._on_batch:
                    self._on_batch(len(seeds), time.perf_counter() - started, waits)
            finally:
                for c in batch:
                    self._pending_images -= len(c.seeds)
                    self._queue.task_done()
