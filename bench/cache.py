"""The response cache on repeated seeds: hit rate and latency with and without it, side by side.

Two servers run the same model in this process's machine, one with the cache and one without
(`--cache-mb 0`); the same request sequence (single-seed requests drawn from a pool with repeats,
as a studio or a CDN miss path sees them) goes to both, over gRPC Generate and over the HTTP image
URL, one at a time on a kept-alive connection. Prints a table and writes JSON.

    .venv/bin/python -m bench.cache --requests 2000 --pool 200 --out bench/results/cache.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from artctl.models import embedded_default
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from tests.helpers import free_port, running_server


def sequence(requests: int, pool: int, seed: int = 0) -> list[int]:
    """Seeds with repeats: a Zipf-like draw from `pool` seeds (popular seeds come back often)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, pool + 1)
    weights = 1.0 / ranks
    return [int(s) for s in rng.choice(pool, size=requests, p=weights / weights.sum())]


def percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
    }


def run_grpc(target: str, seeds: list[int]) -> list[float]:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        stub.Generate(pb.GenerateRequest(seeds=[10**9]))  # connect and warm up
        out = []
        for s in seeds:
            t = time.perf_counter()
            stub.Generate(pb.GenerateRequest(seeds=[s]))
            out.append((time.perf_counter() - t) * 1000)
    return out


def run_http(port: int, seeds: list[int]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/v1/models/default/images/{10**9}.png")
    conn.getresponse().read()
    out = []
    for s in seeds:
        t = time.perf_counter()
        conn.request("GET", f"/v1/models/default/images/{s}.png")
        reply = conn.getresponse()
        reply.read()
        out.append((time.perf_counter() - t) * 1000)
    conn.close()
    return out


def measure(model: Path, seeds: list[int], cache_mb: int) -> dict[str, Any]:
    first_seen: set[int] = set()
    hit = []
    for s in seeds:
        hit.append(s in first_seen)
        first_seen.add(s)
    out: dict[str, Any] = {"cache_mb": cache_mb}
    for api in ("grpc", "http"):
        with running_server([model], http_port=free_port(), cache_mb=cache_mb) as (server, target):
            ms = run_grpc(target, seeds) if api == "grpc" else run_http(server.http_port, seeds)
            lookups = server.cache.lookups
            hits = lookups.labels("hit")._value.get()
            misses = lookups.labels("miss")._value.get()
        out[api] = {
            "all": percentiles(ms),
            "repeats": percentiles([m for m, h in zip(ms, hit) if h]),
            "first_sight": percentiles([m for m, h in zip(ms, hit) if not h]),
            "hit_rate": round(hits / max(hits + misses, 1), 4) if cache_mb else 0.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cache.json"))
    args = parser.parse_args()
    model = embedded_default()
    assert model is not None
    seeds = sequence(args.requests, args.pool)
    rows = [measure(model, seeds, 256), measure(model, seeds, 0)]
    heads = ("hit rate", "all p50", "all p99", "repeat p50", "repeat p99")
    print(f"{'cache':<8}{'api':<6}" + "".join(f"{h:>11}" for h in heads))
    for row in rows:
        for api in ("grpc", "http"):
            r = row[api]
            cells = (r["all"]["p50_ms"], r["all"]["p99_ms"], r["repeats"]["p50_ms"], r["repeats"]["p99_ms"])
            state = "on" if row["cache_mb"] else "off"
            print(f"{state:<8}{api:<6}{r['hit_rate']:>11.3f}" + "".join(f"{c:>11.2f}" for c in cells))
    doc = {
        "benchmark": "response-cache",
        "model": "embedded default (64 px StyleGAN-type)",
        "requests": args.requests,
        "pool": args.pool,
        "distinct_seeds": len(set(seeds)),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "results": rows,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
