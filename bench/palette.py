"""What the in-graph palette snap costs and changes, for the tiny test model (16 px RGBA DCGAN).

One run trains the tiny model, exports it without a palette and with palettes of 6 and 256 colours,
and reports per palette: export wall time, the pixels (and channel values) the snap changed over 256
seeds, that the graph equals artctl.palette.snap exactly, and render throughput (img/s, batch 64,
sessions at artctl's serving level) with and without the snap, measured alternately in the same
process. Prints a table and writes bench/results/palette.json.

    python -m bench.palette
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIX = ["#000000", "#ffffff", "#7f7f7f", "#808080", "#c03020", "#2040c0"]


def train(run_dir: Path, steps: int) -> Path:
    """The tests' tiny model: 16 px RGBA on synthetic shapes (4 steps in the tests: near-grey output)."""
    from artctl_trainer.config import NetworkConfig, TrainConfig
    from artctl_trainer.training_loop import training_loop

    net = NetworkConfig(resolution=16, channels=4, z_dim=16, g_base=8, d_base=8)
    cfg = TrainConfig(network=net, steps=steps, batch=8, synthetic_size=64, sample_every=steps, log_every=1)
    return training_loop(cfg, run_dir)


def throughput(sessions: dict[str, Any], z: np.ndarray, rounds: int, batch: int) -> dict[str, float]:
    """img/s per session: rounds of one pass over z in batches, alternating sessions; the median."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            for i in range(0, len(z), batch):
                session.run(["image"], {"z": z[i : i + batch]})
            times[name].append(time.perf_counter() - start)
    return {name: len(z) / float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import onnxruntime as ort

    from artctl.palette import snap
    from artctl.profile import SERVING_LEVEL, session_options
    from artctl.seeds import latents
    from artctl_exporter.export import export_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4096, help="images per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4, help="training steps (the tests' tiny model: 4)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "palette.json")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    wide = [f"#{v:06x}" for v in rng.choice(1 << 24, size=256, replace=False)]
    palettes: dict[str, list[str] | None] = {"none": None, "six": SIX, "k256": wide}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = train(work / "run", args.steps)
        models, export_s = {}, {}
        for name, colours in palettes.items():
            choice: Any = "none" if colours is None else colours
            timings = []
            for _ in range(2):  # the faster of two: the first export of the run also pays warm-up
                start = time.perf_counter()
                out = export_checkpoint(run, work / f"{name}.onnx", parity_seeds=64, palette=choice)
                timings.append(time.perf_counter() - start)
            models[name], export_s[name] = out.path, min(timings)
        options = session_options(level=SERVING_LEVEL)
        sessions = {
            name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in models.items()
        }
        z256 = latents(np.arange(256, dtype=np.uint64), 16)
        plain = sessions["none"].run(["image"], {"z": z256})[0]
        rate = throughput(sessions, latents(np.arange(args.seeds, dtype=np.uint64), 16), args.rounds, 64)
        report: dict[str, Any] = {
            "model": f"tests' tiny DCGAN, 16x16 RGBA, z_dim 16, {args.steps} training steps",
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "onnxruntime": ort.__version__,
            "level": str(SERVING_LEVEL),
            "batch": 64,
            "images_per_round": args.seeds,
            "rounds": args.rounds,
            "palettes": {},
        }
        for name, colours in palettes.items():
            entry: dict[str, Any] = {"export_s": round(export_s[name], 3), "img_per_s": round(rate[name], 1)}
            if colours is not None:
                snapped = sessions[name].run(["image"], {"z": z256})[0]
                moved = np.any(snapped[..., :3] != plain[..., :3], axis=-1)
                entry.update(
                    colours=len(colours),
                    pixels_changed=int(moved.sum()),
                    pixels_total=int(moved.size),
                    pixels_changed_share=round(float(moved.mean()), 4),
                    channel_values_changed=int(np.count_nonzero(snapped != plain)),
                    mismatches_vs_reference=int(np.count_nonzero(snapped != snap(plain, colours))),
                    throughput_vs_none=round(rate[name] / rate["none"], 3),
                )
            report["palettes"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'palette':8} {'export s':>9} {'img/s':>10} {'vs none':>8} {'pixels changed':>16} {'ref diff':>9}"
    )
    for name, e in report["palettes"].items():
        changed = f"{e['pixels_changed']}/{e['pixels_total']}" if "pixels_changed" in e else "-"
        print(
            f"{name:8} {e['export_s']:9.2f} {e['img_per_s']:10.0f} {e.get('throughput_vs_none', 1.0):8.3f} "
            f"{changed:>16} {e.get('mismatches_vs_reference', '-')!s:>9}"
        )
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
