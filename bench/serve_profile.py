"""Where the server's time goes: py-spy samples `artctl serve` under bench.serve's load (one seed
per request, `--concurrency` requests in flight) and each sample of a busy thread is put in the
first stage its stack names, innermost frame first. At 32 px a render is tiny, so the per-request
work around it (gRPC, protobuf, the event loop, encoding) sets the pace: this shows how much.

    python -m bench.serve_profile --seconds 20 [--scale 10] [--out bench/results]

Needs py-spy (`pip install py-spy==0.4.3`, the version measured), and sampling another process
needs ptrace (root in most containers). Prints a table and writes JSON. Only Python threads are
sampled: the time a thread spends inside ONNX Runtime's `run` counts as inference, its intra-op
pool's own threads do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.serve import LOAD_SCRIPT, REPO, free_port, serve_command, summarise

# (stage, substrings of a frame "function (file:line)"); the first stage a stack's innermost frames
# name wins, so the order goes from the most specific to the most general.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("inference (ONNX Runtime run)", ("onnxruntime/", "InferenceSession.run")),
    ("PNG encode", ("PIL/", "encode_png", "zlib")),
    ("latents and pixel hashes (artctl/seeds.py)", ("seeds.py", "hashlib")),
    ("upscale", ("upscale",)),
    ("response cache", ("artctl_serving/cache.py",)),
    ("batcher", ("artctl_serving/batcher.py",)),
    ("request parsing, response building", ("artctl_serving/",)),
    ("protobuf", ("protobuf", "_pb2")),
    ("gRPC", ("grpc/", "grpc._cython", "cygrpc")),
    # Callbacks in compiled code run straight from the loop's Handle._run: gRPC aio's Cython and
    # protobuf's C serialisation show no Python frame of their own.
    ("event loop: compiled callbacks (gRPC aio, protobuf)", ("Handle._run (",)),
    ("event loop: polling (epoll)", ("EpollSelector.select (",)),
    ("thread -> loop wake-ups", ("_write_to_self (", "_read_from_self (")),
    ("asyncio, other", ("asyncio/",)),
    ("thread pools", ("concurrent/futures", "threading.py")),
]


def stage_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return "other"


def profile(model: Path, seconds: float, concurrency: int, scale: int, rate: int) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    port = free_port()
    target = f"127.0.0.1:{port}"
    extra = ("--log-level", "WARNING", "--queue-size", "65536", "--cache-mb", "0")
    server = subprocess.Popen(serve_command(model, port, *extra))
    raw = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-profile-{port}.txt"
    try:
        from artctl.cli import wait_for_server

        wait_for_server(target, timeout=60, proc=server)
        warmup = 2.0
        load_args = [target, str(concurrency), str(seconds), str(warmup), "png", "0", str(scale)]
        load = subprocess.Popen(
            [sys.executable, "-c", LOAD_SCRIPT, *load_args], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        time.sleep(warmup)
        sampler = [spy, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
        sampler += ["--rate", str(rate), "--format", "raw", "--nonblocking", "--output", str(raw)]
        subprocess.run(sampler, check=True, capture_output=True)
        out, _ = load.communicate(timeout=seconds + 120)
    finally:
        server.terminate()
        server.wait(timeout=60)
    doc = json.loads(out)
    samples: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            frames = stack.split(";")
            stage = stage_of(frames)
            samples[stage] += int(count)
            leaves.setdefault(stage, Counter())[frame_name(frames[-1])] += int(count)
    raw.unlink()
    total = sum(samples.values())
    return {
        "load": summarise(doc["latencies"], doc["seconds"], doc["errors"]),
        "busy_samples": total,
        "stages": {k: round(v / total, 4) for k, v in samples.most_common()},
        "innermost_frames": {
            k: {frame: round(n / total, 4) for frame, n in leaves[k].most_common(4)} for k in samples
        },
    }


def frame_name(frame: str) -> str:
    """`function (path/to/file.py:12)` -> `function (file.py)`."""
    function, _, where = frame.rpartition(" (")
    return f"{function} ({where.rstrip(')').rpartition(':')[0].rpartition('/')[2]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported .onnx (default: the embedded model)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scale", default="1", help="delivered sizes to profile, e.g. 1,10")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    from artctl.models import embedded_default

    model = args.model or embedded_default()
    assert model is not None, "give --model: this install ships no default model"
    runs = {
        f"scale {s}": profile(model, args.seconds, args.concurrency, int(s), args.rate)
        for s in args.scale.split(",")
    }
    doc = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": model.name,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "method": "py-spy record --nonblocking --format raw on the server; busy Python threads only",
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "serve-profile.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    stages = sorted(
        {s for r in runs.values() for s in r["stages"]},
        key=lambda s: -max(r["stages"].get(s, 0) for r in runs.values()),
    )
    width = max(len(s) for s in [*stages, "img/s (one seed per request)"])
    print(f"{'share of busy samples':{width}}" + "".join(f"{name:>12}" for name in runs))
    for stage in stages:
        print(f"{stage:{width}}" + "".join(f"{r['stages'].get(stage, 0):12.1%}" for r in runs.values()))
    print(
        f"{'img/s (one seed per request)':38}"
        + "".join(f"{r['load']['images_per_s']:12.1f}" for r in runs.values())
    )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
