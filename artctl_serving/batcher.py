"""Dynamic batching: many small requests become few large inference calls.

The batcher does not know what it batches. A request is a block of typed rows (artctl_serving.rows:
seeds with psi and labels, latents, or ws); the render function takes one kind of rows and returns
one result row per input row, and mypy holds each batcher to its kind. Requests are cut into chunks
of at most max_batch rows and queued FIFO. A worker takes the oldest chunk, waits up to max_delay
for more, runs one render call in a worker thread (the event loop never blocks), and hands each
chunk its slice of the result. Because every
row's result depends only on that row (the CPU EP is batch-invariant; on CUDA the runtime runs at a
canonical shape), which companions a row is batched with never changes its pixels.

Admission is bounded by `queue_size` rows and, once the render rate is known, by `max_queue_s`
seconds of queued work at that rate: what is admitted can be finished within a shutdown's grace,
so a SIGTERM loses no accepted request. A request larger than the whole queue is refused as one
that can never succeed. Work whose client gave up (cancelled) or whose deadline passed gives its
place back at once and is never computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic

import numpy as np

from artctl_serving.errors import (
    BatcherClosedError,
    DeadlineExpiredError,
    QueueFullError,
    RequestTooLargeError,
)
from artctl_serving.rows import R

BatchObserver = Callable[[int, float, list[float]], None]  # (rows, seconds, each chunk's queue wait)


@dataclass(eq=False)
class _Chunk(Generic[R]):
    rows: R
    n: int
    future: asyncio.Future[np.ndarray]
    deadline: float | None  # time.monotonic() seconds
    enqueued: float
    started: bool = False  # taken into a batch: it will be computed
    settled: bool = False  # its rows no longer count against the queue
    timer: asyncio.TimerHandle | None = None


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0  # rows rendered
    dropped: int = 0  # rows dropped before compute (cancelled or expired)
    admitted: int = 0  # requests admitted
    completed: int = 0  # requests whose every row was rendered


RATE_WEIGHT = 0.3  # weight of the newest batch in the moving average of the render rate


class DynamicBatcher(Generic[R]):
    def __init__(
        self,
        render: Callable[[R], np.ndarray],
        executor: Executor,
        max_batch: int = 64,
        max_delay_s: float = 0.002,
        queue_size: int = 4096,
        observers: Sequence[BatchObserver] = (),
        max_queue_s: float | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_delay_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and max_delay >= 0")
        self._render = render
        self._executor = executor
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.queue_size = queue_size
        self.max_queue_s = max_queue_s
        self.rows_per_s: float | None = None  # measured render rate (moving average)
        self._observers = tuple(observers)  # each told of every batch: size, seconds, waits
        self._queue: asyncio.Queue[_Chunk[R]] = asyncio.Queue()
        self._pending_rows = 0
        self._worker: asyncio.Task[None] | None = None
        self._carry: _Chunk[R] | None = None  # taken from the queue but too big for the last batch
        self._closed = False
        self.stats = BatchStats()

    @property
    def queue_depth(self) -> int:
        """Rows admitted and not yet finished (computing, queued)."""
        return self._pending_rows

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="artctl-batcher")

    def stop_admitting(self) -> None:
        """Refuse new requests from now on (UNAVAILABLE); what was admitted still finishes."""
        self._closed = True

    async def close(self) -> None:
        """Stop admitting; finish every queued chunk; then stop the worker."""
        self._closed = True
        if self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    # -- admission -----------------------------------------------------------------------------------

    def _admit(self, rows: R, deadline: float | None) -> list[_Chunk[R]]:
        """Queue a request's chunks now, all or nothing."""
        if self._closed:
            raise BatcherClosedError("server is shutting down")
        n = len(rows)
        if n > self.queue_size:
            raise RequestTooLargeError(
                f"{n} images in one request can never be admitted: the queue holds {self.queue_size}"
            )
        if self._pending_rows + n > self.queue_size:
            raise QueueFullError(f"queue full ({self._pending_rows} images waiting, limit {self.queue_size})")
        rate = self.rows_per_s
        if (
            self.max_queue_s is not None
            and rate
            and self._pending_rows
            and (self._pending_rows + n) / rate > self.max_queue_s
        ):
            seconds = self._pending_rows / rate
            raise QueueFullError(
                f"queue full ({self._pending_rows} images waiting, about {seconds:.1f} s of work; the "
                f"server admits at most {self.max_queue_s:g} s so that a shutdown finishes it)"
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        chunks = []
        for start in range(0, n, self.max_batch):
            part = rows.take(slice(start, start + self.max_batch))
            chunk = _Chunk(part, len(part), loop.create_future(), deadline, now)
            if deadline is not None:
                chunk.timer = loop.call_later(max(0.0, deadline - now), self._expire, chunk)
            chunks.append(chunk)
            self._queue.put_nowait(chunk)
        self._pending_rows += n
        self.stats.admitted += 1
        return chunks

    def _settle(self, chunk: _Chunk[R]) -> None:
        """The chunk's rows stop counting against the queue (once)."""
        if not chunk.settled:
            chunk.settled = True
            self._pending_rows -= chunk.n
            if chunk.timer is not None:
                chunk.timer.cancel()

    def _drop(self, chunk: _Chunk[R], error: BaseException | None) -> None:
        """A chunk that will never be computed: fail (or cancel) it and give its place back."""
        if chunk.started or chunk.settled:
            return
        if not chunk.future.done():
            if error is None:
                chunk.future.cancel()
            else:
                chunk.future.set_exception(error)
        self._settle(chunk)
        self.stats.dropped += chunk.n

    def _expire(self, chunk: _Chunk[R]) -> None:
        self._drop(chunk, DeadlineExpiredError("deadline passed while queued"))

    async def submit(self, rows: R, deadline: float | None = None) -> np.ndarray:
        """All result rows of a request (already validated), through the shared batches."""
        chunks = self._admit(rows, deadline)
        try:
            parts = await asyncio.gather(*(c.future for c in chunks))
        except BaseException:
            for c in chunks:
                self._drop(c, None)
            raise
        self.stats.completed += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def stream(self, rows: R, deadline: float | None = None) -> AsyncGenerator[np.ndarray, None]:
        """A request's result rows chunk by chunk, in order; every chunk is queued at once, so later
        ones render while earlier ones are being sent. Close it (contextlib.aclosing) to drop the rest."""
        chunks = self._admit(rows, deadline)
        try:
            for i, chunk in enumerate(chunks):
                result = await chunk.future
                if i == len(chunks) - 1:
                    self.stats.completed += 1
                yield result
        finally:
            for chunk in chunks:
                self._drop(chunk, None)

    # -- the worker ----------------------------------------------------------------------------------

    async def _next_chunk(self, timeout: float | None) -> _Chunk[R] | None:
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

    async def _collect(self) -> list[_Chunk[R]]:
        """FIFO: the oldest live chunk, then more until max_batch rows or max_delay has passed."""
        batch: list[_Chunk[R]] = []
        size = 0
        give_up = None
        while size < self.max_batch:
            chunk = await self._next_chunk(None if give_up is None else give_up - time.monotonic())
            if chunk is None:
                break
            if chunk.deadline is not None and time.monotonic() >= chunk.deadline:
                self._expire(chunk)
            if chunk.future.done():  # cancelled or expired while queued: never computed
                self._queue.task_done()
                continue
            if size + chunk.n > self.max_batch or (batch and chunk.rows.layout != batch[0].rows.layout):
                # Too big for this batch, or another layout (rows of another kind are never merged):
                # it opens the next batch, keeping FIFO order.
                self._carry = chunk
                break
            chunk.started = True
            batch.append(chunk)
            size += chunk.n
            if give_up is None:
                give_up = time.monotonic() + self.max_delay_s
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            joined = batch[0].rows.join([c.rows for c in batch[1:]])
            rows = sum(c.n for c in batch)
            started = time.perf_counter()
            now = time.monotonic()
            waits = [now - c.enqueued for c in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._render, joined)
                if len(results) != rows:  # a short result must not hand a request its neighbour's rows
                    raise RuntimeError(f"the render function returned {len(results)} rows for {rows}")
            except Exception as exc:
                for c in batch:
                    if not c.future.done():
                        c.future.set_exception(exc)
            else:
                offset = 0
                for c in batch:
                    if not c.future.done():
                        c.future.set_result(results[offset : offset + c.n])
                    offset += c.n
                self.stats.batches += 1
                self.stats.images += rows
                seconds = time.perf_counter() - started
                if seconds > 0:
                    rate = rows / seconds
                    last = self.rows_per_s
                    self.rows_per_s = rate if last is None else last + RATE_WEIGHT * (rate - last)
                for observe in self._observers:
                    observe(rows, seconds, waits)
            finally:
                for c in batch:
                    self._settle(c)
                    self._queue.task_done()
