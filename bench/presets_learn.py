"""Does the recipe learn on a small folder? The old default (DCGAN, no augmentation) against the
preset `artctl train` now picks for under 2,000 images, trained for the same CPU time on the same
images, scored by FID/KID against those images. Prints a table and writes JSON.

    .venv/bin/python -m bench.presets_learn --data DIR --minutes 4 --out bench/results/presets-learn.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from artctl_trainer.config import TrainConfig
from artctl_trainer.datasets import count_images, load_dataset
from artctl_trainer.metrics import RealSet, measure
from artctl_trainer.presets import auto_preset, preset
from artctl_trainer.preview import generate
from artctl_trainer.training_loop import Trainer


def run(
    name: str, layer: dict[str, Any], data: str, minutes: float, n: int, grids: Path | None
) -> dict[str, Any]:
    cfg = TrainConfig.model_validate(
        {
            **layer,
            "data": data,
            "steps": 10**7,
            "minutes": minutes,
            "budget_clock": "cpu",
            "sample_every": 10**7,
            "checkpoint_every": 0,
            "log_every": 50,
            "threads": 2,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        job = Trainer(cfg, Path(tmp) / "run")
        job.run()
        if grids is not None:  # the last sample grid, to look at
            grids.mkdir(parents=True, exist_ok=True)
            last_grid = sorted((Path(tmp) / "run").glob("samples-*.png"))[-1]
            (grids / f"{name.split()[0]}.png").write_bytes(last_grid.read_bytes())
        records = [
            json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
        ]
        real = RealSet.of(load_dataset(data, cfg.network.resolution, cfg.network.channels))
        report = measure(
            lambda start, count, labels=None: generate(job.G_out, range(start, start + count)), real, n
        )
    last = [r for r in records if "loss_D" in r][-1]
    return {
        "recipe": name,
        "augment": cfg.augment,
        "loss": cfg.loss,
        "spectral_norm": cfg.network.spectral_norm,
        "steps": last["step"],
        "loss_D_last": last["loss_D"],
        "fid": round(report.fid, 2),
        "kid": round(report.kid, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--minutes", type=float, default=4.0, help="CPU minutes per recipe")
    parser.add_argument("--n", type=int, default=1000, help="generated images per score")
    parser.add_argument("--out", type=Path, default=Path("bench/results/presets-learn.json"))
    parser.add_argument("--grids", type=Path, default=None, help="folder for each recipe's last sample grid")
    args = parser.parse_args()
    images = count_images(args.data)
    chosen = auto_preset("dcgan", images)
    layers = {
        "old default (dcgan, no augmentation)": {"network": {"resolution": 32}},
        f"{chosen} (chosen for {images} images)": preset(chosen).model_dump(
            include={"network", "loss", "augment", "mirror", "diffaug_policy"}
        ),
    }
    rows = [run(name, layer, args.data, args.minutes, args.n, args.grids) for name, layer in layers.items()]
    print(f"{'recipe':<44}{'steps':>7}{'loss_D':>8}{'FID':>8}{'KID':>8}")
    for r in rows:
        print(f"{r['recipe']:<44}{r['steps']:>7}{r['loss_D_last']:>8.3f}{r['fid']:>8.1f}{r['kid']:>8.4f}")
    doc = {
        "benchmark": "presets-learn",
        "data": args.data,
        "images": images,
        "cpu_minutes": args.minutes,
        "torch": torch.__version__,
        "results": rows,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
