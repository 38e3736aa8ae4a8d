"""Pixels depend only on (model, seed): not on batch companions, restarts, or thread counts (CPU EP)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from tests.helpers import running_server


def one_by_one(target: str, seeds: list[int]) -> dict[int, str]:
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.GeneratorStub(ch)
        out = {}
        for seed in seeds:
            (art,) = stub.Generate(pb.GenerateRequest(seeds=[seed], format=pb.IMAGE_FORMAT_RAW)).artworks
            out[seed] = art.pixel_sha256
    return out


def mixed_batches(target: str, seeds: list[int], concurrency: int, rng: random.Random) -> dict[int, str]:
    """Random request sizes in random order, many in flight, so seeds meet random companions."""
    pool = seeds[:]
    rng.shuffle(pool)
    groups = []
    while pool:
        k = rng.randint(1, 12)
        groups.append(pool[:k])
        pool = pool[k:]
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.GeneratorStub(ch)

        def call(group: list[int]) -> list[tuple[int, str]]:
            resp = stub.Generate(pb.GenerateRequest(seeds=group, format=pb.IMAGE_FORMAT_RAW))
            return [(a.seed, a.pixel_sha256) for a in resp.artworks]

        with ThreadPoolExecutor(concurrency) as ex:
            results = list(ex.map(call, groups))
    out: dict[int, str] = {}
    for group, pairs in zip(groups, results):
        assert [s for s, _ in pairs] == group
        out.update(pairs)
    return out


def test_pixels_survive_batching_restarts_and_thread_counts(tiny_model: Path) -> None:
    rng = random.Random(2026)
    seeds = [rng.randrange(2**64) for _ in range(512)]
    with running_server([tiny_model], threads=1, max_batch=64, max_delay_ms=5) as (_, target):
        reference = one_by_one(target, seeds)
        assert len(set(reference.values())) == len(seeds), "distinct seeds should give distinct images"
        assert mixed_batches(target, seeds, concurrency=64, rng=rng) == reference
    # A fresh server process state, another thread count and batch limit, and a canonical exec batch.
    for options in ({"threads": 2, "max_batch": 16}, {"threads": 2, "max_batch": 64, "exec_batch": 32}):
        with running_server([tiny_model], **options) as (_, target):
            assert mixed_batches(target, seeds, concurrency=64, rng=rng) == reference
