"""The arms of a GAN recipe at equal compute on the emoji set: FID/KID (and the quality gate) of each.

DCGAN vs StyleGAN, non-saturating vs R3GAN's RpGAN + R1 + R2, DiffAugment vs ADA.

Every arm trains on the same data with the same batch and seed for the same time budget (`--minutes`
of `--clock` time, `cpu` by default: this process's CPU time, so a shared machine does not favour
one arm), then its EMA generator draws `--n` images through the seed contract (seeds 0..n-1,
labels in the real set's proportions) and is scored against the whole real set. A benchmark, not a
test: prints a table, writes compare.json and compare-samples.png into --out.

    python -m bench.compare --data data/emoji64 --runs runs/compare --minutes 12 --n 10000

`--arms` picks a subset; `--train-only` and `--score-only` split the two halves.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from artctl.fileio import write_json_atomic
from artctl.imaging import image_grid
from artctl_trainer.config import TrainConfig
from artctl_trainer.metrics import RealSet, checkpoint_source, measure, real_images

# The default model's recipe: the StyleGAN arm takes its network and optimiser from it.
DEFAULT_RECIPE: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "models" / "emoji64-default" / "train-config.json").read_text()
)

# Each family with its usual optimiser: the DCGAN at the trainer's default width (g/d base 32,
# G 1.3 M and D 0.7 M parameters), the StyleGAN arm exactly the default model's network (0.9 M each).
FAMILIES: dict[str, dict[str, Any]] = {
    "dcgan": {
        "network": {
            "architecture": "dcgan",
            "resolution": 64,
            "channels": 4,
            "z_dim": 128,
            "conditional": True,
        },
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        "ema_decay": 0.998,
    },
    "stylegan": {
        key: DEFAULT_RECIPE[key] for key in ("network", "lr_g", "lr_d", "beta1", "beta2", "ema_decay")
    },
}
# R3GAN: R1 and R2 of equal weight, here StyleGAN2's R1 heuristic at 64 px and batch 32.
_RPGAN = {"loss": "rpgan", "r1_gamma": 0.0002 * 64**2 / 32, "r2_gamma": 0.0002 * 64**2 / 32}
# Each arm: its family and what it changes. R1/R2 need a DCGAN critic without BatchNorm.
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcgan": ("dcgan", {}),
    "dcgan-ada": ("dcgan", {"augment": "ada"}),
    "stylegan": ("stylegan", {}),
    "stylegan-ada": ("stylegan", {"augment": "ada"}),
    "stylegan-diffaug": ("stylegan", {"augment": "diffaug"}),
    "stylegan-rpgan-ada": ("stylegan", {**_RPGAN, "augment": "ada"}),
    "stylegan-rpgan-diffaug": ("stylegan", {**_RPGAN, "augment": "diffaug"}),
    "dcgan-rpgan-diffaug": ("dcgan", {**_RPGAN, "augment": "diffaug", "spectral_norm": True}),
}
FIRST_ARMS = ("dcgan", "dcgan-ada", "stylegan", "stylegan-ada")  # the earlier comparison (compare.json)


def arm_config(
    arm: str, data: str, minutes: float, clock: str, threads: int, mirror: bool = True
) -> TrainConfig:
    family_name, changes = ARMS[arm]
    family = FAMILIES[family_name]
    changes = dict(changes)
    network = {
        **family["network"],
        **({"spectral_norm": True} if changes.pop("spectral_norm", False) else {}),
    }
    return TrainConfig.model_validate(
        {
            **family,
            "network": network,
            "data": data,
            "batch": 32,
            "augment": "none",
            **changes,
            "ada_kimg": 100,
            "mirror": mirror,
            "steps": 1_000_000,  # the time budget ends every arm
            "minutes": minutes,
            "budget_clock": clock,
            "sample_every": 1_000_000,
            "checkpoint_every": 0,
            "log_every": 50,
            "threads": threads,
            "seed": 7,
        }
    )


def train_arm(config: TrainConfig, run: Path) -> None:
    from artctl_trainer.training_loop import training_loop

    if run.exists() and any(run.iterdir()):
        raise SystemExit(f"{run} is not empty: an arm must start from scratch (remove it, or --score-only)")
    started = time.perf_counter()
    training_loop(config, run)
    print(f"  trained {run.name} in {time.perf_counter() - started:.0f} s wall", flush=True)


def finished_arm(run: Path) -> dict[str, Any]:
    """The arm's last training record, which must say the budget stopped it at the latest checkpoint."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    record = dict(json.loads(next(line for line in reversed(lines) if '"loss_D"' in line)))
    latest = (run / "latest").read_text().strip()
    if "stopped" not in record or latest != f"step-{record['step']:06d}":
        raise SystemExit(f"{run}: not a finished arm (last record {record}, latest {latest})")
    return record


def score_arm(run: Path, real: RealSet, n: int) -> dict[str, Any]:
    """Scores of the arm's final checkpoint, kept in RUN/score-n<N>.json for that checkpoint and real set."""
    record = finished_arm(run)
    config = json.loads((run / "config.json").read_text())
    key = {"checkpoint": f"step-{record['step']:06d}", "real_fingerprint": real.fingerprint, "n": n}
    kept = run / f"score-n{n}.json"
    if kept.is_file():
        previous = json.loads(kept.read_text())
        if all(previous.get(k) == v for k, v in key.items()):
            return dict(previous)
    generate, _ = checkpoint_source(run, None)
    report = measure(generate, real, n, batch=250, kid_subsets=100)
    scores = {
        **key,
        "minutes": config["minutes"],
        "clock": config["budget_clock"],
        "fid": report.fid,
        "kid": report.kid,
        "kid_std": report.kid_std,
        "kimg": record["kimg"],
        "steps": record["step"],
        "ada_p": record.get("ada_p"),
        **report.gate,
    }
    write_json_atomic(kept, scores)
    return scores


def sample_sheet(runs: dict[str, Path], out: Path, count: int = 16) -> Path:
    """The same seeds from every arm, one 4x4 grid per arm, side by side."""
    grids = []
    for arm, run in runs.items():
        generate, _ = checkpoint_source(run, None)
        grid = image_grid(generate(0, count), cols=4)
        canvas = Image.new("RGB", (grid.width, grid.height + 18), (40, 40, 40))
        canvas.paste(grid, (0, 18))
        ImageDraw.Draw(canvas).text((4, 3), arm, fill=(230, 230, 230))
        grids.append(canvas)
    sheet = Image.new("RGB", (sum(g.width + 8 for g in grids), grids[0].height), (40, 40, 40))
    x = 0
    for grid in grids:
        sheet.paste(grid, (x, 0))
        x += grid.width + 8
    path = out / "compare-samples.png"
    sheet.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/emoji64")
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"))
    parser.add_argument("--out", type=Path, default=Path("docs/quality"))
    parser.add_argument("--arms", default=",".join(FIRST_ARMS), help=f"of {', '.join(ARMS)}")
    parser.add_argument(
        "--mirror", action=argparse.BooleanOptionalAction, default=True, help="horizontal flips of the reals"
    )
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget of every arm")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per arm while training")
    parser.add_argument("--score-threads", type=int, default=os.cpu_count() or 1, help="threads to score")
    parser.add_argument("--n", type=int, default=10_000, help="generated images per FID/KID")
    parser.add_argument("--score-only", action="store_true", help="score runs already trained")
    parser.add_argument("--train-only", action="store_true", help="train, score later with --score-only")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    runs = {arm: args.runs / arm for arm in arms}
    if not args.score_only:
        for arm, run in runs.items():
            print(f"training {arm} for {args.minutes:g} min ({args.clock} clock)", flush=True)
            train_arm(arm_config(arm, args.data, args.minutes, args.clock, args.threads, args.mirror), run)
        if args.train_only:
            return

    import torch

    torch.set_num_threads(max(1, args.score_threads))  # the Inception runner takes the same count
    config = arm_config(arms[0], args.data, args.minutes, args.clock, args.threads)
    real = real_images(args.data, config.network.resolution, config.network.channels)
    report: dict[str, Any] = {"data": args.data, "real_images": len(real.images), "arms": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    for arm, run in runs.items():
        started = time.perf_counter()
        report["arms"][arm] = score_arm(run, real, args.n)
        row = report["arms"][arm]
        print(
            f"  {arm:14} kimg {row['kimg']:7.1f}  FID {row['fid']:6.1f}  KID {row['kid'] * 1000:6.1f}e-3 "
            f"({time.perf_counter() - started:.0f} s to score)",
            flush=True,
        )
    report["samples"] = str(sample_sheet(runs, args.out))
    print(f"\n| arm | budget | kimg | FID ({args.n}) | KID x1e3 | final ADA p |")
    print("|---|---|---|---|---|---|")
    for arm, row in report["arms"].items():
        p = "" if row["ada_p"] is None else f"{row['ada_p']:.2f}"
        kid = f"{row['kid'] * 1000:.1f} ± {row['kid_std'] * 1000:.1f}"
        budget = f"{row['minutes']:g} {row['clock']}-min"
        print(f"| {arm} | {budget} | {row['kimg']:.1f} | {row['fid']:.1f} | {kid} | {p} |")
    name = "compare.json" if set(arms) == set(FIRST_ARMS) else f"compare-{'-'.join(arms)}.json"
    (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
