"""Which ONNX Runtime settings change pixels, and how fast each level renders (a benchmark).

For a model (default: the embedded one) and N seeds it renders every combination of graph
optimisation level, batch size and intra-op thread count, and counts the images whose uint8
pixels differ from artctl's serving profile (ORT_ENABLE_ALL, one batch, default threads); then it
times each level at batch 64, the levels alternating in one process so a noisy machine affects
all alike. Other runtimes (onnxruntime versions, CPUs) are measured by running this script there
and comparing the `hashes` it writes. docs/seed-contract.md reports the results.

    python -m bench.pixels --out bench/results          # table + pixels.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from artctl.models import embedded_default
from artctl.profile import GRAPH_LEVELS, cpu_isa
from artctl.seeds import latents

LEVELS = ("disable", "basic", "extended", "all")


def feeds_for(session: Any, seeds: np.ndarray, card: dict[str, str]) -> dict[str, np.ndarray]:
    names = {i.name for i in session.get_inputs()}
    z_dim = int(card["z_dim"])
    feeds = {"z": latents(seeds, z_dim)}
    if "psi" in names:
        feeds["psi"] = np.full(len(seeds), float(card.get("default_psi", "0.7")), np.float32)
    if "label" in names:
        feeds["label"] = (seeds % max(1, len(json.loads(card.get("label_names", "[]"))))).astype(np.int64)
    return feeds


def session(model: Path, level: str, threads: int) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def render(model: Path, level: str, threads: int, batch: int, seeds: np.ndarray) -> list[str]:
    sess = session(model, level, threads)
    card = sess.get_modelmeta().custom_metadata_map
    out = []
    for start in range(0, len(seeds), batch):
        part = seeds[start : start + batch]
        images = sess.run(["image"], feeds_for(sess, part, card))[0]
        out += [hashlib.sha256(img.tobytes()).hexdigest() for img in images]
    return out


def speed(model: Path, rounds: int = 5, batch: int = 64) -> dict[str, float]:
    """img/s per level at `batch` (median of rounds, levels alternating)."""
    sessions = {level: session(model, level, 0) for level in LEVELS}
    card = next(iter(sessions.values())).get_modelmeta().custom_metadata_map
    feeds = {lv: feeds_for(s, np.arange(batch, dtype=np.uint64), card) for lv, s in sessions.items()}
    times: dict[str, list[float]] = {level: [] for level in LEVELS}
    for level in LEVELS:  # warm-up
        sessions[level].run(["image"], feeds[level])
    for _ in range(rounds):
        for level in LEVELS:
            started = time.perf_counter()
            sessions[level].run(["image"], feeds[level])
            times[level].append(batch / (time.perf_counter() - started))
    return {level: round(statistics.median(v), 1) for level, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported .onnx (default: the embedded model)")
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--threads", default="0,1,2,4", help="intra-op thread counts, comma-separated")
    parser.add_argument("--batches", default="256,64,7,1")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    model = Path(args.model) if args.model else embedded_default()
    assert model is not None, "give --model: this install ships no default model"
    seeds = np.arange(args.seeds, dtype=np.uint64)
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    reference = render(model, "all", 0, batches[0], seeds)
    rows = []
    for level in LEVELS:
        for count in threads:
            for batch in batches:
                hashes = reference if (level, count, batch) == ("all", 0, batches[0]) else None
                hashes = hashes or render(model, level, count, batch, seeds)
                changed = sum(a != b for a, b in zip(hashes, reference))
                rows.append({"level": level, "threads": count, "batch": batch, "changed_images": changed})
                print(f"{level:9} threads {count:2}  batch {batch:4}  images differing from ALL: {changed}")
    rates = speed(model)
    for level, rate in rates.items():
        print(f"{level:9} {rate:8.1f} img/s at batch 64 ({rate / rates['extended']:.2f}x EXTENDED)")
    doc = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_isa()}",
        "runtime": f"onnxruntime {ort.__version__}",
        "model": model.name,
        "seeds": args.seeds,
        "reference": "ORT_ENABLE_ALL, one batch, onnxruntime's default threads",
        "rows": rows,
        "img_per_s_batch64": rates,
        "hashes": reference,  # compare with the same run on another runtime or CPU
    }
    out = Path(args.out) / "pixels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
