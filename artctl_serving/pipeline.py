"""render -> encode -> count: the one path every image-returning RPC takes.

Rows go through a model's batcher, images are encoded in parallel in the encoder pool (PNG or raw
bytes, each with its pixel hash), and both are counted in the server's metrics. `image_fields` is
what the Artwork, MixedArtwork and Frame messages have in common.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from artctl.delivery import upscale
from artctl.imaging import encode_png
from artctl.seeds import pixel_sha256
from artctl_serving.cache import CacheKey, ImageCache
from artctl_serving.metrics import ServerMetrics
from artctl_serving.registry import AnyJob

RAW_MIME = "application/x-artctl-raw"


@dataclass(frozen=True)
class Encoded:
    data: bytes
    mime: str
    pixel_sha256: str
    seconds: float


def encode_image(image_hwc: npt.NDArray[np.uint8], fmt: str, scale: int = 1) -> Encoded:
    """Encode one image, upscaled `scale` times by nearest neighbour (the hash stays the native
    pixels'); zlib releases the GIL, so a thread pool encodes in parallel."""
    started = time.perf_counter()
    digest = pixel_sha256(image_hwc)
    image_hwc = upscale(image_hwc, scale)
    if fmt == "png":
        data, mime = encode_png(image_hwc), "image/png"
    elif fmt == "raw":
        data, mime = np.ascontiguousarray(image_hwc).tobytes(), RAW_MIME
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return Encoded(data=data, mime=mime, pixel_sha256=digest, seconds=time.perf_counter() - started)


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the batcher's clock (time.monotonic), None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def image_fields(enc: Encoded, shape: tuple[int, int, int], scale: int = 1) -> dict[str, Any]:
    """The fields every image message carries: bytes, MIME type, size (of the bytes, so upscaled)
    and pixel hash (of the native pixels)."""
    h, w, c = shape
    return {
        "image": enc.data,
        "mime": enc.mime,
        "width": w * scale,
        "height": h * scale,
        "channels": c,
        "pixel_sha256": enc.pixel_sha256,
    }


class Pipeline:
    def __init__(
        self, encode_pool: Executor, metrics: ServerMetrics, cache: ImageCache[Encoded] | None = None
    ) -> None:
        self.encode_pool = encode_pool
        self.metrics = metrics
        self.cache = cache

    async def render(self, model: str, job: AnyJob, deadline: float | None) -> np.ndarray:
        """Images of all the job's rows, through the model's shared batches."""
        images = await job.submit(deadline)
        self.metrics.images.labels(model).inc(len(images))
        return images

    async def encode(self, images: npt.NDArray[np.uint8], fmt: str, scale: int = 1) -> list[Encoded]:
        """Encode all images in parallel in the encoder pool."""
        loop = asyncio.get_running_loop()
        encoded = await asyncio.gather(
            *(loop.run_in_executor(self.encode_pool, encode_image, img, fmt, scale) for img in images)
        )
        hist = self.metrics.encode_duration.labels(fmt)
        for item in encoded:
            hist.observe(item.seconds)
        return list(encoded)

    def cached(self, keys: list[CacheKey]) -> list[Encoded] | None:
        """Every row's image when the cache holds them all (counted as hits), else None."""
        cache = self.cache
        if cache is None or not cache.enabled or not all(key in cache for key in keys):
            return None
        return [item for item in (cache.get(key) for key in keys) if item is not None]

    async def images(
        self,
        model: str,
        job: AnyJob,
        fmt: str,
        deadline: float | None,
        keys: list[CacheKey] | None = None,
        scale: int = 1,
    ) -> list[Encoded]:
        """Encoded images of all the job's rows. With `keys` (one per row: artctl_serving.cache.row_keys),
        rows the cache holds are not rendered again; the others are, and kept."""
        cache = self.cache
        if cache is None or not cache.enabled or keys is None:
            return await self.encode(await self.render(model, job, deadline), fmt, scale)
        found = [cache.get(key) for key in keys]
        missing = [i for i, item in enumerate(found) if item is None]
        if missing:
            part = job.take(np.asarray(missing, dtype=np.intp))
            fresh = await self.encode(await self.render(model, part, deadline), fmt, scale)
            for i, item in zip(missing, fresh):
                cache.put(keys[i], item)
                found[i] = item
        return [item for item in found if item is not None]

    async def stream(
        self,
        model: str,
        job: AnyJob,
        fmt: str,
        deadline: float | None,
        scale: int = 1,
    ) -> AsyncGenerator[list[Encoded], None]:
        """Encoded images batch by batch, in order, as the batcher finishes them."""
        async with contextlib.aclosing(job.stream(deadline)) as parts:
            async for images in parts:
                self.metrics.images.labels(model).inc(len(images))
                yield await self.encode(images, fmt, scale)
