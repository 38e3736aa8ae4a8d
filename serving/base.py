"""What both servicers share: the registry, the encoder pool, limits, metrics and error handling."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from serving.encoding import Encoded, encode_image
from serving.errors import message_for, status_for
from serving.metrics import ServerMetrics
from serving.registry import ModelRegistry, ServedModel

log = logging.getLogger("artctl.serving")
T = TypeVar("T")


@dataclass
class ServiceContext:
    registry: ModelRegistry
    encode_pool: Executor
    metrics: ServerMetrics
    max_seeds_per_request: int = 1024


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the batcher's clock (time.monotonic), None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class ServicerBase:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def guarded(
        self, rpc: str, model: str, context: grpc.aio.ServicerContext, body: Callable[[], Awaitable[T]]
    ) -> T:
        """Run an RPC body; map known errors to their status, count and time every call.

        The call is counted before its status goes out, so a client that sees the status and then
        scrapes /metrics always finds it counted.
        """
        started = time.perf_counter()

        def count(code: grpc.StatusCode) -> None:
            self.ctx.metrics.requests.labels(model or "default", rpc, code.name).inc()
            self.ctx.metrics.request_duration.labels(rpc).observe(time.perf_counter() - started)

        try:
            result = await body()
        except asyncio.CancelledError:
            count(grpc.StatusCode.CANCELLED)
            raise
        except grpc.aio.AbortError:
            count(context.code() or grpc.StatusCode.UNKNOWN)  # type: ignore[arg-type]
            raise
        except Exception as exc:
            known = status_for(exc)
            if known is None:
                log.exception("%s failed", rpc)
            code = known or grpc.StatusCode.INTERNAL
            count(code)
            message = message_for(exc) if known else f"internal error: {type(exc).__name__}"
            await context.abort(code, message)
            raise  # context.abort always raises; this line is never reached
        count(grpc.StatusCode.OK)
        return result

    async def render(
        self,
        model: ServedModel,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None,
        labels: npt.NDArray[np.int64] | None,
        context: grpc.aio.ServicerContext,
    ) -> npt.NDArray[np.uint8]:
        images = await model.batcher.submit(seeds, psi, labels, deadline=deadline_of(context))
        self.ctx.metrics.images.labels(model.name).inc(len(seeds))
        return images

    async def encode(self, images: npt.NDArray[np.uint8], fmt: str) -> list[Encoded]:
        """Encode all images in parallel in the encoder pool."""
        loop = asyncio.get_running_loop()
        encoded = await asyncio.gather(
            *(loop.run_in_executor(self.ctx.encode_pool, encode_image, img, fmt) for img in images)
        )
        hist = self.ctx.metrics.encode_duration.labels(fmt)
        for item in encoded:
            hist.observe(item.seconds)
        return list(encoded)
