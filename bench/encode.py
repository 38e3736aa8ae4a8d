"""PNG encoding: thread pool vs process pool vs one thread, on the same images (a benchmark).

The server encodes in a pool off the event loop; this measures which pool is faster here, since
zlib (inside Pillow) releases the GIL but the per-image Python work does not.

    python -m bench.encode --size 64 --count 2000 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from artctl_serving.pipeline import encode_image


def _encode(img: np.ndarray) -> int:
    return len(encode_image(img, "png").data)


def measure(pool: Executor | None, images: list[np.ndarray], rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        if pool is None:
            for img in images:
                _encode(img)
        else:
            list(pool.map(_encode, images, chunksize=16 if isinstance(pool, ProcessPoolExecutor) else 1))
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Blocks of colour plus fine texture: compresses roughly like generated art (neither flat nor noise).
    base = rng.integers(0, 240, size=(args.count, args.size // 8, args.size // 8, 4), dtype=np.uint8)
    texture = rng.integers(0, 16, size=(args.count, args.size, args.size, 4), dtype=np.uint8)
    images = list(base.repeat(8, axis=1).repeat(8, axis=2) + texture)
    workers = os.cpu_count() or 2
    rows = {"one thread": measure(None, images)}
    with ThreadPoolExecutor(workers) as pool:
        rows[f"thread pool x{workers}"] = measure(pool, images)
    with ProcessPoolExecutor(workers) as pool:
        measure(pool, images[:64], rounds=1)  # start the workers before timing
        rows[f"process pool x{workers}"] = measure(pool, images)
    print(f"PNG encoding, {args.size}px RGBA, {args.count} images, {workers} CPUs (best of 3)")
    for name, rate in rows.items():
        print(f"  {name:<18} {rate:>8.0f} img/s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"encode-{args.size}.json").write_text(
        json.dumps({"size": args.size, "count": args.count, "cpus": workers, "images_per_s": rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
