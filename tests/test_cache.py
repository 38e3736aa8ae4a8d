"""The response cache: a hit is byte for byte what a fresh render gives, across gRPC and HTTP; it
stays within its bytes; and a reloaded model never answers with its predecessor's pictures."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from artctl.client import GeneratorClient
from artctl_serving.cache import ImageCache, row_keys
from artctl_serving.pipeline import encode_image
from tests.helpers import free_port, running_server, train_tiny


def test_hits_are_byte_identical_to_fresh_renders_in_any_mix(tiny_model: Path) -> None:
    seeds = [0, 1, 2, 3, 2**64 - 1]
    with running_server([tiny_model], cache_mb=0) as (_, fresh_target), GeneratorClient(fresh_target) as c:
        fresh = {a.seed: a.image for a in c.generate(seeds).artworks}
    with (
        running_server([tiny_model], http_port=free_port()) as (server, target),
        GeneratorClient(target) as c,
    ):
        model = server.registry.get("tiny")
        c.generate([1, 3])  # some rows cached, the others not
        batches = model.batcher.stats.batches
        mixed = c.generate(seeds)
        assert [a.seed for a in mixed.artworks] == seeds  # order kept around the hits
        assert {a.seed: a.image for a in mixed.artworks} == fresh
        assert model.batcher.stats.images == 2 + 3  # the cached rows were not rendered again
        again = c.generate(seeds)
        assert model.batcher.stats.batches == batches + 1, "an all-hit request renders nothing"
        assert [a.image for a in again.artworks] == [fresh[s] for s in seeds]
        url = f"http://127.0.0.1:{server.http_port}/v1/models/tiny/images/3.png"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.read() == fresh[3]  # HTTP and gRPC share entries and bytes
        hits = server.cache.lookups.labels("hit")._value.get()
        misses = server.cache.lookups.labels("miss")._value.get()
        assert (hits, misses) == (2 + 5 + 1, 2 + 3)


def test_the_cache_stays_within_its_bytes_least_recently_used_first_out() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    item = encode_image(image, "raw")  # 192 bytes
    cache: ImageCache = ImageCache(max_bytes=3 * len(item.data))
    keys = row_keys("sha", [1, 2, 3, 4], None, None, "raw")
    for key in keys[:3]:
        cache.put(key, item)
    assert cache.get(keys[0]) is item  # now the most recently used
    cache.put(keys[3], item)
    assert keys[1] not in cache and keys[0] in cache and len(cache) == 3
    assert cache.bytes == 3 * len(item.data) and cache.evictions._value.get() == 1
    assert row_keys("other", [1], None, None, "raw") != keys[:1], "the model's hash is in every key"
    psi = np.array([0.7], np.float32)
    assert row_keys("sha", [1], psi, None, "png") != row_keys("sha", [1], None, None, "png")
    assert row_keys("sha", [1], None, None, "png", edit=((0, b"x"),)) != row_keys(
        "sha", [1], None, None, "png"
    )


def test_a_reloaded_model_never_answers_from_its_predecessors_entries(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_model, folder / "art.onnx")
    other_run = tmp_path / "other"
    train_tiny(other_run, steps=2, train={"seed": 9})
    from artctl_exporter.export import export_checkpoint

    other = export_checkpoint(other_run, tmp_path / "other.onnx", parity_seeds=8).path
    with running_server([folder], watch_interval_s=0) as (server, target), GeneratorClient(target) as c:
        before = c.generate([5], model="art").artworks[0].image
        shutil.copy(other, folder / ".art.onnx.tmp")
        (folder / ".art.onnx.tmp").replace(folder / "art.onnx")
        asyncio.run_coroutine_threadsafe(server.reload(), server.loop).result(60)
        after = c.generate([5], model="art").artworks[0].image
    with running_server([other], cache_mb=0) as (_, t2), GeneratorClient(t2) as c2:
        expected = c2.generate([5]).artworks[0].image
    assert after == expected and after != before


@pytest.mark.parametrize("cache_mb", [-1])
def test_a_negative_cache_size_is_refused(cache_mb: int) -> None:
    from artctl_serving.config import ServeConfigError, ServerOptions

    with pytest.raises(ServeConfigError, match="cache_mb must be >= 0"):
        ServerOptions(cache_mb=cache_mb)


def test_grpc_mix_and_the_http_mix_url_share_the_cache(style_model: Path) -> None:
    """One cache for both fronts: a pair mixed over gRPC is the HTTP mix URL's reply without a new
    render, byte for byte, and a repeated Mix renders nothing."""
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc

    request = pb.MixRequest(
        model="sty", content_seeds=[5, 6], style_seeds=[7, 8], first_layer=0, last_layer=3
    )
    with running_server([style_model], http_port=free_port()) as (server, target):
        batcher = server.registry.get("sty").style().batcher
        with grpc.insecure_channel(target) as channel:
            first = pb_grpc.GeneratorStub(channel).Mix(request, timeout=60)
            rendered = batcher.stats.images
            url = f"http://127.0.0.1:{server.http_port}/v1/models/sty/mix/6/8.png?layers=0-3"
            with urllib.request.urlopen(url, timeout=60) as reply:
                assert reply.read() == first.artworks[1].image
            again = pb_grpc.GeneratorStub(channel).Mix(request, timeout=60)
        assert [a.image for a in again.artworks] == [a.image for a in first.artworks]
        assert batcher.stats.images == rendered == 2, "the URL and the repeated Mix rendered nothing"
