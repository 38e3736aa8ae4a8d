"""Batch invariance of one execution provider: do a seed's pixels depend on its batch companions?

For N seeds: a reference render of each seed alone, then the same seeds in random batches at random
positions among random companions, twice. Run once with natural batch shapes (exec_batch 0) and
once with the canonical padded shape (exec_batch E), reporting mismatching images and images/s so
the cost of the canonical shape is measured beside its benefit. On the CUDA EP the session uses
deterministic compute and HEURISTIC conv search (artctl_serving/runtime.py); pass --provider cuda there.

    python -m bench.determinism --model m.onnx --seeds 4096 --provider cuda --out bench/results
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from artctl.seeds import pixel_sha256
from artctl_serving.runtime import Engine, ModelRuntime, load_model


def hashes(runtime: ModelRuntime, seeds: list[int]) -> list[str]:
    images = runtime.render(np.asarray(seeds, dtype=np.uint64))
    return [pixel_sha256(img) for img in images]


def mixed_render(
    runtime: ModelRuntime, seeds: list[int], rng: random.Random, max_batch: int
) -> dict[int, str]:
    """Render every seed once inside random batches, shuffled among random companions."""
    order = seeds[:]
    rng.shuffle(order)
    out: dict[int, str] = {}
    while order:
        k = rng.randint(1, max_batch)
        group, order = order[:k], order[k:]
        companions = [rng.randrange(2**64) for _ in range(rng.randint(0, max_batch - len(group)))]
        batch = group + companions
        rng.shuffle(batch)
        for seed, digest in zip(batch, hashes(runtime, batch)):
            if seed in group:
                out[seed] = digest
    return out


def run(
    model: Path, provider: str, exec_batch: int, seeds: list[int], max_batch: int, rng: random.Random
) -> dict:
    runtime = load_model(model, engine=Engine.choose(provider, exec_batch=exec_batch))
    alone = {s: hashes(runtime, [s])[0] for s in seeds}
    mismatches = []
    for _ in range(2):
        mixed = mixed_render(runtime, seeds, rng, max_batch)
        mismatches.append(sum(mixed[s] != alone[s] for s in seeds))
    batch = np.arange(max_batch, dtype=np.uint64)
    runtime.render(batch)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        for k in (max_batch, max_batch // 2 + 1, 7, 1):  # a mix of natural shapes, as a server sees
            runtime.render(batch[:k])
            n += k
    return {
        "provider": runtime.profile.provider,
        "device": runtime.profile.device,
        "exec_batch": exec_batch,
        "seeds": len(seeds),
        "mismatching_images_per_pass": mismatches,
        "images_per_s_mixed_shapes": n / (time.perf_counter() - start),
    }


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--seeds", type=int, default=512)
    parser.add_argument("--exec-batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    rng = random.Random(1234)
    seeds = [rng.randrange(2**64) for _ in range(args.seeds)]
    rows: list[dict[str, Any]] = [
        run(args.model, args.provider, 0, seeds, args.exec_batch, rng),
        run(args.model, args.provider, args.exec_batch, seeds, args.exec_batch, rng),
    ]
    where = f"{rows[0]['provider']} ({rows[0]['device']})"
    print(f"batch invariance: {args.model.name}, {args.seeds} seeds, provider {where}")
    print(f"{'exec batch':>10} {'mismatches (2 passes)':>22} {'img/s, mixed shapes':>20}")
    for r in rows:
        label = "natural" if r["exec_batch"] == 0 else str(r["exec_batch"])
        print(f"{label:>10} {r['mismatching_images_per_pass']!s:>22} {r['images_per_s_mixed_shapes']:>20.0f}")
    cost = rows[1]["images_per_s_mixed_shapes"] / rows[0]["images_per_s_mixed_shapes"]
    print(f"canonical shape throughput / natural shapes: {cost:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"determinism-{rows[0]['provider']}.json"
    path.write_text(json.dumps({"rows": rows, "canonical_over_natural": cost}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
