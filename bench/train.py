"""Trainer throughput: images per second of the training loop, per model or per preset.

Not a timed test: it prints a table and writes JSON. Each model trains on synthetic shapes with the
network of its preset (dcgan64, emoji64-stylegan) and the whole loop (G and D steps, EMA, lazy R1,
augmentation); the first `--warmup` steps are left out of the rate. `--presets` measures every
preset (or the ones named) at its own batch size instead.

    .venv/bin/python bench/train.py --steps 12 --out bench/results/train-cpu.json
    .venv/bin/python bench/train.py --presets all --out bench/results/train-presets-cpu.json
    .venv/bin/python bench/train.py --device cuda --steps 50 --warmup 10 --out bench/results/train-gpu.json

On a GPU the loop syncs every step (it checks the losses are finite), so the rate is wall-clock true.
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

from artctl_trainer.config import TrainConfig
from artctl_trainer.presets import preset
from artctl_trainer.training_loop import training_loop

MODELS = {"dcgan-64": "dcgan64", "stylegan-64": "emoji64-stylegan"}


def measure(
    name: str, steps: int, warmup: int, batch: int | None, device: str, precision: str, device_note: str
) -> dict[str, Any]:
    recipe = MODELS.get(name, name)
    base = preset(recipe).model_dump()
    batch = batch or int(base["batch"])
    base.update(
        steps=steps,
        batch=batch,
        synthetic_size=256,
        sample_every=10**6,
        log_every=1,
        checkpoint_every=0,
        device=device,
        precision=precision,
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
        "preset": recipe,
        "resolution": cfg.network.resolution,
        "batch": batch,
        "steps_timed": steps - warmup,
        "img_per_s": round(rate, 2),
        "G_params": G_params,
        "augment": cfg.augment,
        "r1_weight": cfg.r1_weight,
        "wall_s": round(total, 2),
        "device": device_note,
        "precision": _precision(cfg),
    }


def _precision(cfg: TrainConfig) -> str:
    from artctl_trainer.distributed import amp_dtype, resolve_device

    return "bf16" if amp_dtype(resolve_device(cfg.device), cfg.precision) is not None else "fp32"


def _device_note(device: str) -> str:
    from artctl_trainer.distributed import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(resolved)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _generator(cfg: TrainConfig) -> torch.nn.Module:
    from artctl_trainer.networks import build_generator

    return build_generator(cfg.network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--presets", nargs="+", default=None, help="preset names, or all (each at its batch)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--out", type=Path, default=None, help="[bench/results/train-<cpu|gpu>.json]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_note = _device_note(args.device)
    out = args.out or Path(f"bench/results/train-{'gpu' if device_note.startswith('cuda') else 'cpu'}.json")
    if args.presets:
        from artctl_trainer.presets import PRESETS

        names = [n for n in PRESETS if n != "emoji64-stylegan"] if args.presets == ["all"] else args.presets
        rows = [
            measure(n, args.steps, args.warmup, None, args.device, args.precision, device_note) for n in names
        ]
    else:
        rows = [
            measure(m, args.steps, args.warmup, args.batch, args.device, args.precision, device_note)
            for m in args.models
        ]
    print(f"{'model':<24}{'px':>5}{'batch':>6}{'img/s':>10}{'G params':>12}  augment")
    for r in rows:
        print(
            f"{r['model']:<24}{r['resolution']:>5}{r['batch']:>6}{r['img_per_s']:>10.1f}"
            f"{r['G_params']:>12,}  {r['augment']}"
        )
    doc = {
        "benchmark": "trainer-throughput",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": device_note,
        "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
