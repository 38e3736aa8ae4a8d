"""The dynamic batcher with a recording render function: batching, splitting, limits, deadlines."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from artctl_serving.batcher import BatcherClosedError, DeadlineExpiredError, DynamicBatcher, QueueFullError
from artctl_serving.rows import SeedRows, StyleRows


class Recorder:
    """Renders seed s as a 1x1x1 image of value s % 251 and records every batch it was given."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, rows: SeedRows) -> np.ndarray:
        seeds = rows.seeds
        with self.lock:
            self.batches.append([int(s) for s in seeds])
        if self.delay_s:
            time.sleep(self.delay_s)
        return (seeds % 251).astype(np.uint8).reshape(-1, 1, 1, 1)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_pixels() -> None:
    rec = Recorder(delay_s=0.01)

    async def main() -> None:
        batcher = DynamicBatcher(rec, ThreadPoolExecutor(1), max_batch=16, max_delay_s=0.02)
        batcher.start()
        requests = [np.arange(i * 3, i * 3 + 3, dtype=np.uint64) for i in range(20)]
        results = await asyncio.gather(*(batcher.submit(SeedRows(r)) for r in requests))
        for req, res in zip(requests, results):
            assert res[:, 0, 0, 0].tolist() == [int(s) % 251 for s in req]
        await batcher.close()

    run(main())
    assert all(len(b) <= 16 for b in rec.batches)
    assert len(rec.batches) < 20, "requests were not batched together"
    assert sorted(s for b in rec.batches for s in b) == list(range(60))


def test_large_request_is_split_and_reassembled_in_order() -> None:
    rec = Recorder()

    async def main() -> np.ndarray:
        batcher = DynamicBatcher(rec, ThreadPoolExecutor(1), max_batch=8, max_delay_s=0)
        batcher.start()
        out = await batcher.submit(SeedRows(np.arange(100, 130, dtype=np.uint64)))
        await batcher.close()
        return out

    out = run(main())
    assert out[:, 0, 0, 0].tolist() == [s % 251 for s in range(100, 130)]
    assert max(len(b) for b in rec.batches) == 8 and len(rec.batches) == 4


def test_full_queue_is_refused_at_once() -> None:
    rec = Recorder(delay_s=0.2)

    async def main() -> None:
        batcher = DynamicBatcher(rec, ThreadPoolExecutor(1), max_batch=4, max_delay_s=0, queue_size=8)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(SeedRows(np.arange(8, dtype=np.uint64))))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(QueueFullError, match="queue full"):
            await batcher.submit(SeedRows(np.arange(1, dtype=np.uint64)))
        assert time.perf_counter() - started < 0.05
        assert len(await first) == 8
        await batcher.close()

    run(main())


def test_expired_and_cancelled_work_is_never_computed() -> None:
    rec = Recorder(delay_s=0.15)

    async def main() -> None:
        batcher = DynamicBatcher(rec, ThreadPoolExecutor(1), max_batch=2, max_delay_s=0)
        batcher.start()
        busy = asyncio.ensure_future(batcher.submit(SeedRows(np.array([1, 2], dtype=np.uint64))))
        await asyncio.sleep(0.02)  # the worker is now inside the slow render
        expiring = asyncio.ensure_future(
            batcher.submit(SeedRows(np.array([777], dtype=np.uint64)), deadline=time.monotonic() + 0.05)
        )
        cancelled = asyncio.ensure_future(batcher.submit(SeedRows(np.array([888], dtype=np.uint64))))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        later = asyncio.ensure_future(batcher.submit(SeedRows(np.array([3], dtype=np.uint64))))
        await busy
        with pytest.raises(DeadlineExpiredError):
            await expiring
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (await later)[0, 0, 0, 0] == 3
        assert batcher.stats.dropped == 2
        await batcher.close()

    run(main())
    seen = {s for b in rec.batches for s in b}
    assert 777 not in seen and 888 not in seen and {1, 2, 3} <= seen


def test_close_finishes_queued_work_then_refuses_new_work() -> None:
    rec = Recorder(delay_s=0.05)

    async def main() -> None:
        batcher = DynamicBatcher(rec, ThreadPoolExecutor(1), max_batch=2, max_delay_s=0)
        batcher.start()
        pending = [
            asyncio.ensure_future(batcher.submit(SeedRows(np.array([i], dtype=np.uint64)))) for i in range(5)
        ]
        await asyncio.sleep(0)
        await batcher.close()
        assert all(p.done() and not p.exception() for p in pending)
        with pytest.raises(BatcherClosedError):
            await batcher.submit(SeedRows(np.array([9], dtype=np.uint64)))

    run(main())


def test_rows_of_other_layouts_are_never_merged_into_one_batch() -> None:
    seen: list[tuple[Hashable, int]] = []
    seeds = SeedRows(np.arange(4, dtype=np.uint64))
    ws = StyleRows(np.zeros((4, 2, 8), np.float32))
    both = SeedRows(np.arange(4, dtype=np.uint64), np.ones(4, np.float32))

    def render(rows: SeedRows | StyleRows) -> np.ndarray:
        seen.append((rows.layout, len(rows)))
        time.sleep(0.01)
        return np.zeros((len(rows), 1, 1, 1), np.uint8)

    async def main() -> None:
        batcher: DynamicBatcher[SeedRows | StyleRows] = DynamicBatcher(
            render, ThreadPoolExecutor(1), max_batch=64, max_delay_s=0.05
        )
        batcher.start()
        jobs = asyncio.gather(*(batcher.submit(c) for c in (seeds, ws, seeds, both, ws)))
        out = await asyncio.wait_for(jobs, 60)  # a batcher whose worker died would never answer
        assert [len(o) for o in out] == [4] * 5
        await batcher.close()

    run(main())
    rendered = {layout: sum(n for key, n in seen if key == layout) for layout, _ in seen}
    assert rendered == {seeds.layout: 8, ws.layout: 8, both.layout: 4}, "rows of two layouts shared a batch"


def test_a_render_that_returns_the_wrong_number_of_rows_fails_the_batch_not_its_neighbours() -> None:
    def short(rows: SeedRows) -> np.ndarray:
        return np.zeros((len(rows) - 1, 1, 1, 1), np.uint8)

    async def main() -> list[object]:
        batcher = DynamicBatcher(short, ThreadPoolExecutor(1), max_batch=64, max_delay_s=0.05)
        batcher.start()
        jobs = [batcher.submit(SeedRows(np.arange(i, i + 3, dtype=np.uint64))) for i in range(3)]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.close()
        return out

    for result in run(main()):
        assert isinstance(result, RuntimeError) and "returned" in str(result) and "rows for" in str(result)
