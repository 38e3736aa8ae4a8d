"""Trainer throughput: images per second of the training loop for dcgan-64 and stylegan-64.

Not a timed test: it prints a table and writes JSON. Each model trains on synthetic shapes with the
network of its preset (dcgan64, emoji64-stylegan) and the whole loop (G and D steps, EMA, lazy R1,
augmentation); the first `--warmup` steps are left out of the rate.

    .venv/bin/python bench/train.py --steps 12 --out bench/results/train-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig, preset
from trainer.training_loop import training_loop

MODELS = {"dcgan-64": "dcgan64", "stylegan-64": "emoji64-stylegan"}


def measure(name: str, steps: int, warmup: int, batch: int, device_note: str) -> dict[str, Any]:
    base = preset(MODELS[name]).model_dump()
    base.update(
        steps=steps, batch=batch, synthetic_size=256, sample_every=10**6, log_every=1, checkpoint_every=0
    )
    cfg = TrainConfig.model_validate(base)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        training_loop(cfg, Path(tmp) / "run")
        total = time.perf_counter() - t0
        records = [
            json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
        ]
    # Records carry cumulative img/s; elapsed(step) = step * batch / img_per_s.
    elapsed = {r["step"]: r["step"] * batch / r["img_per_s"] for r in records}
    rate = (steps - warmup) * batch / (elapsed[steps] - elapsed[warmup])
    G_params = sum(p.numel() for p in _generator(cfg).parameters())
    return {
        "model": name,
        "preset": MODELS[name],
        "batch": batch,
        "steps_timed": steps - warmup,
        "img_per_s": round(rate, 2),
        "G_params": G_params,
        "augment": cfg.augment,
        "r1_weight": cfg.r1_weight,
        "wall_s": round(total, 2),
        "device": device_note,
    }


def _generator(cfg: TrainConfig) -> torch.nn.Module:
    from trainer.networks import build_generator

    return build_generator(cfg.network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/train-cpu.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_note = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    rows = [measure(m, args.steps, args.warmup, args.batch, device_note) for m in args.models]
    print(f"{'model':<14}{'batch':>6}{'img/s':>10}{'G params':>12}  augment")
    for r in rows:
        print(f"{r['model']:<14}{r['batch']:>6}{r['img_per_s']:>10.1f}{r['G_params']:>12,}  {r['augment']}")
    doc = {
        "benchmark": "trainer-throughput",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": device_note,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
