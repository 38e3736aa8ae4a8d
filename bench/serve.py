"""Serving benchmark: throughput and latency over a concurrency sweep (a benchmark, not a test).

Three ways to render PNGs of one model, measured side by side in one run on one machine:
  batched    `artctl serve` with the dynamic batcher (--max-batch 64)
  batch-1    `artctl serve --max-batch 1` (every request runs alone)
  ceiling    in-process ONNX Runtime at batch 64 + the same parallel PNG encoding, no gRPC
The server runs as its own process; the load comes from another process (grpc.aio, one seed per
request, `concurrency` requests in flight). On a 2-core box the load generator shares the cores
with the server, so absolute numbers are pessimistic; the ratios are the point.

    python -m bench.serve --out bench/results          # table + serve.json + serve.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def build_model(work: Path, resolution: int) -> Path:
    """A DCGAN exported at the given resolution (1 training step: speed does not depend on quality)."""
    from artctl_exporter.export import export_checkpoint
    from artctl_trainer.config import NetworkConfig, TrainConfig
    from artctl_trainer.training_loop import training_loop

    cfg = TrainConfig(
        network=NetworkConfig(resolution=resolution, channels=4, z_dim=128, g_base=64, d_base=32),
        steps=1,
        batch=8,
        synthetic_size=64,
        sample_every=1,
    )
    training_loop(cfg, work / "run")
    return export_checkpoint(work / "run", work / f"dcgan{resolution}.onnx", parity_seeds=16).path


def serve_command(model: Path, port: int, *extra: str) -> list[str]:
    """`artctl serve` of one model on a loopback port, without hot reload (shared by the benchmarks)."""
    return [
        sys.executable,
        "-m",
        "artctl",
        "serve",
        str(model),
        "--port",
        str(port),
        "--watch-interval",
        "0",
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LOAD_SCRIPT = r"""
import asyncio, json, sys, time
import grpc
from artctl.v1 import generator_pb2 as pb, generator_pb2_grpc as pb_grpc

async def main(target, concurrency, seconds, warmup, fmt, first_seed, scale):
    fmt = pb.IMAGE_FORMAT_RAW if fmt == "raw" else pb.IMAGE_FORMAT_PNG
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.GeneratorStub(ch)
        latencies, errors = [], 0
        counter = iter(range(first_seed, first_seed + 10**9))
        stop_at = time.perf_counter() + warmup + seconds
        measure_from = time.perf_counter() + warmup
        async def worker():
            nonlocal errors
            while (start := time.perf_counter()) < stop_at:
                try:
                    await stub.Generate(
                        pb.GenerateRequest(seeds=[next(counter)], format=fmt, scale=scale), timeout=30
                    )
                except grpc.RpcError:
                    errors += 1
                    continue
                if start >= measure_from:
                    latencies.append(time.perf_counter() - start)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        print(json.dumps({"latencies": latencies, "errors": errors, "seconds": seconds}))

# target concurrency seconds warmup [png|raw] [first seed] [scale]: one seed per request, each new
args = sys.argv[1:] + ["png", "0", "1"][len(sys.argv) - 5 :]
asyncio.run(main(args[0], int(args[1]), float(args[2]), float(args[3]), args[4], int(args[5]), int(args[6])))
"""


def summarise(latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    arr = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "images_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(arr, 50) * 1000),
        "p99_ms": float(np.percentile(arr, 99) * 1000),
        "requests": len(latencies),
        "errors": errors,
    }


def run_server_sweep(
    model: Path, extra: list[str], levels: list[int], seconds: float, scale: int = 1
) -> list[dict[str, Any]]:
    port = free_port()
    target = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        serve_command(
            model,
            port,
            "--log-level",
            "WARNING",
            "--queue-size",
            "65536",
            "--max-seeds-per-request",
            "1024",
            *extra,
        )
    )
    try:
        from artctl.cli import wait_for_server

        wait_for_server(target, timeout=60, proc=proc)
        rows = []
        for level in levels:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    LOAD_SCRIPT,
                    target,
                    str(level),
                    str(seconds),
                    "1.0",
                    "png",
                    "0",
                    str(scale),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            doc = json.loads(out.stdout)
            rows.append({"concurrency": level, **summarise(doc["latencies"], doc["seconds"], doc["errors"])})
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_ceiling(
    model: Path, seconds: float, batch: int = 64, provider: str = "cpu", fmt: str = "png", scale: int = 1
) -> dict[str, Any]:
    """Raw ORT at a fixed batch plus parallel encoding (PNG or RAW, upscaled by nearest neighbour
    when `scale` > 1, as the server delivers it) in this process: the upper bound."""
    from artctl.delivery import upscale
    from artctl_serving.pipeline import encode_image
    from artctl_serving.runtime import Engine, load_model

    runtime = load_model(model, engine=Engine.choose(provider))
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    runtime.render(np.arange(batch, dtype=np.uint64))  # warm-up: first-call setup is not throughput
    done, next_seed = 0, 0
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        images = runtime.render(np.arange(next_seed, next_seed + batch, dtype=np.uint64))
        list(pool.map(lambda img: encode_image(upscale(img, scale), fmt), images))
        latencies.append(time.perf_counter() - t0)
        next_seed += batch
        done += batch
    elapsed = time.perf_counter() - start
    pool.shutdown()
    return {
        "images_per_s": done / elapsed,
        "batch": batch,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
    }


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in ("batched", "batch-1"):
        rows = results["modes"][mode]
        xs = [r["concurrency"] for r in rows]
        ax1.plot(xs, [r["images_per_s"] for r in rows], marker="o", label=mode)
        ax2.plot(xs, [r["p50_ms"] for r in rows], marker="o", label=f"{mode} p50")
        ax2.plot(xs, [r["p99_ms"] for r in rows], marker="x", linestyle="--", label=f"{mode} p99")
    ax1.axhline(results["ceiling"]["images_per_s"], color="grey", linestyle=":", label="in-process ceiling")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests (1 seed each)")
        ax.legend()
        ax.grid(alpha=0.3)
    ax1.set_ylabel("PNG images / s")
    ax2.set_ylabel("latency (ms)")
    ax2.set_yscale("log")
    fig.suptitle(f"artctl serve, {results['model']['name']}, {results['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="an exported .onnx (default: build a DCGAN)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--levels", default="1,4,16,64,256")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--provider", default="cpu", help="cpu or cuda: the server's and the ceiling's")
    parser.add_argument("--max-batch", type=int, default=64, help="the batched server's --max-batch")
    parser.add_argument("--scale", type=int, default=1, help="delivered size: native x N (nearest neighbour)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="serve", help="file names: NAME.json and NAME.png")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp), args.resolution)
        import onnxruntime as ort

        from artctl.modelcard import ModelCard, file_sha256

        meta = ort.InferenceSession(str(model)).get_modelmeta().custom_metadata_map
        card = ModelCard.from_metadata(meta)
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "onnxruntime": ort.__version__,
            },
            "model": {"name": model.name, "resolution": card.resolution, "sha256": file_sha256(model)},
            "scale": args.scale,
            "seconds_per_level": args.seconds,
            "provider": args.provider,
            "modes": {},
        }
        provider = ["--provider", args.provider]
        batched = ["--max-batch", str(args.max_batch), *provider]
        results["modes"]["batched"] = run_server_sweep(model, batched, levels, args.seconds, args.scale)
        single = ["--max-batch", "1", *provider]
        results["modes"]["batch-1"] = run_server_sweep(model, single, levels, args.seconds, args.scale)
        results["ceiling"] = run_ceiling(model, args.seconds, args.max_batch, args.provider, scale=args.scale)
    at = {r["concurrency"]: r for r in results["modes"]["batched"]}
    one = {r["concurrency"]: r for r in results["modes"]["batch-1"]}
    best = max(r["images_per_s"] for r in results["modes"]["batched"])
    results["ratios"] = {
        "batched_over_batch1_at_64": at[64]["images_per_s"] / one[64]["images_per_s"] if 64 in at else None,
        "best_batched_over_ceiling": best / results["ceiling"]["images_per_s"],
        # No server beats the in-process ceiling, so this bounds what batching can gain over batch-1.
        "ceiling_over_batch1_at_64": results["ceiling"]["images_per_s"] / one[64]["images_per_s"]
        if 64 in one
        else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.out / f"{args.name}.png")

    print(f"\nartctl serve benchmark: {model.name}, {os.cpu_count()} CPUs, {args.seconds:.0f} s per level")
    print(f"{'mode':<9} {'conc':>5} {'img/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for mode in ("batched", "batch-1"):
        for r in results["modes"][mode]:
            print(
                f"{mode:<9} {r['concurrency']:>5} {r['images_per_s']:>9.0f} {r['p50_ms']:>9.1f} "
                f"{r['p99_ms']:>9.1f} {r['errors']:>7}"
            )
    c = results["ceiling"]
    print(
        f"{'ceiling':<9} {'-':>5} {c['images_per_s']:>9.0f} {c['p50_ms']:>9.1f} {c['p99_ms']:>9.1f}"
        f"   (batch {c['batch']})"
    )
    ratios = results["ratios"]
    print(
        f"batched / batch-1 at concurrency 64: {ratios['batched_over_batch1_at_64']:.2f}x   "
        f"best batched / ceiling: {ratios['best_batched_over_ceiling']:.0%}   "
        f"bound (ceiling / batch-1 at 64): {ratios['ceiling_over_batch1_at_64']:.2f}x"
    )
    print(f"wrote {args.out / (args.name + '.json')} and {args.out / (args.name + '.png')}")


if __name__ == "__main__":
    main()
