"""Which CPU speed-ups pay for the pixel-art recipe: memory layout and torch.compile, side by side.

One nouns32 step (hinge, spectral-norm D, conditional, batch 64, RGB 32 px) in four forms, measured
in one run so the machine's load falls on all alike: eager contiguous (the default of runs made
before), eager channels_last (what `memory_format = "channels_last"` does), and torch.compile of
each. Prints a table of img/s, kimg per CPU-minute and the one-off warm-up (compile) cost; writes JSON.

    .venv/bin/python -m bench.train_layouts --threads 2 --out bench/results/train-layouts-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from artctl_trainer.networks import apply_spectral_norm, build_discriminator, build_generator, init_weights
from artctl_trainer.presets import preset


def make_step(layout: str, compiled: bool, batch: int = 64) -> Callable[[], None]:
    cfg = preset("nouns32").network.model_copy(
        update={
            "channels": 3,
            "label_names": [str(i) for i in range(23)],
            "trait_values": {"head": [str(i) for i in range(254)]},  # Nouns' 254 heads
            "palette": ["#000000"],  # the snap needs one to build; this step does not snap
        }
    )
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    init_weights(G, cfg)
    init_weights(D, cfg)
    apply_spectral_norm(D)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    G.to(memory_format=fmt)  # type: ignore[call-overload]
    D.to(memory_format=fmt)  # type: ignore[call-overload]
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    g: Any = torch.compile(G) if compiled else G
    d: Any = torch.compile(D) if compiled else D

    def step() -> None:
        z, c = torch.randn(batch, cfg.z_dim), torch.randint(0, 23, (batch,))
        real = (torch.rand(batch, 3, 32, 32) * 2 - 1).contiguous(memory_format=fmt)
        fake = g(z, c)
        loss_d = torch.relu(1 - d(real, c)).mean() + torch.relu(1 + d(fake.detach(), c)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = -d(fake, c).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


def measure(layout: str, compiled: bool, steps: int, warmup: int, batch: int = 64) -> dict[str, Any]:
    step = make_step(layout, compiled, batch)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - t0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = steps * batch
    return {
        "layout": layout,
        "compiled": compiled,
        "img_per_s": images / wall,
        "kimg_per_cpu_minute": images / 1000 / (cpu / 60),
        "warmup_s": warm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        measure(layout, compiled, args.steps, args.warmup)
        for compiled in (False, True)
        for layout in ("contiguous", "channels_last")
    ]
    doc = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
        },
        "torch": torch.__version__,
        "recipe": "nouns32",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'layout':14} {'compile':>7} {'img/s':>8} {'kimg/CPU-min':>13} {'warm-up s':>10}")
    for r in rows:
        print(
            f"{r['layout']:14} {r['compiled']!s:>7} {r['img_per_s']:8.0f} "
            f"{r['kimg_per_cpu_minute']:13.2f} {r['warmup_s']:10.1f}"
        )


if __name__ == "__main__":
    main()
