"""Score training arms on pixel art side by side: FID/KID, the quality gate and the pixel-art scores.

Each arm is a run folder (its newest checkpoint, the EMA generator) or a folder holding a
`samples.npy` of seeds 0..n-1 (bench.textbook_dcgan's). Every arm is scored on the same n seeds
against the same held-out set, so the table compares like with like. Prints a table, writes JSON.

    .venv/bin/python -m bench.pixelart_arms --heldout data/nouns-heldout --n 2000 \\
        --out bench/results/pixelart-arms.json runs/arms/nouns32 runs/arms/dcgan32 runs/arms/textbook

`--curve RUN` scores every checkpoint of one run instead (the quality curve over its minutes, the
minutes read from the checkpoints' times against the run's config.json); `--fid-every K` runs
Inception on every K-th point only (the pixel-art scores take seconds, FID minutes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def arm_source(path: Path) -> tuple[Any, dict[str, Any]]:
    """generate(start, count, labels) and what the arm is (its recipe and length)."""
    if (path / "samples.npy").is_file():
        samples = np.load(path / "samples.npy")
        info = json.loads((path / "result.json").read_text())
        return (lambda start, count, labels=None: samples[start : start + count]), {
            "recipe": info["arm"],
            "kimg": info["kimg"],
            "cpu_minutes": info["cpu_minutes"],
            "conditional": info.get("conditional", False),  # samples drawn for the held-out's labels
        }
    from artctl_trainer.checkpoint import load_checkpoint
    from artctl_trainer.metrics import checkpoint_source

    generate, _ = checkpoint_source(path)
    ck = load_checkpoint(path)
    state = json.loads((ck.path / "state.json").read_text())
    cfg = ck.config
    recipe = f"{cfg.network.architecture} {cfg.loss}{' +SN' if cfg.network.spectral_norm else ''}"
    recipe += f" g{cfg.network.g_base}{' cond' if cfg.network.conditional else ''}"
    recipe += f"{' mirror' if cfg.mirror else ''} b{cfg.batch}"
    info = {"recipe": recipe, "kimg": state["kimg"], "conditional": cfg.network.conditional}
    return generate, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", type=Path, nargs="*")
    parser.add_argument("--curve", type=Path, help="score every checkpoint of this run")
    parser.add_argument("--fid-every", type=int, default=1)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from artctl.cli.metrics import PixelArtJudge
    from artctl_trainer.metrics import measure, real_images

    real = real_images(args.heldout, 32, 3)
    arms = list(args.arms)
    start = 0.0
    if args.curve is not None:
        arms = sorted((args.curve / "checkpoints").glob("step-*"))
        start = (args.curve / "config.json").stat().st_mtime
    rows = []
    for i, arm in enumerate(arms):
        generate, info = arm_source(arm)
        judge = PixelArtJudge.of(args.heldout, real)
        assert judge is not None, f"{args.heldout} has no palette"
        row: dict[str, Any] = {"arm": arm.name, **info}
        if args.curve is not None:
            row["minutes"] = round(((arm / "state.json").stat().st_mtime - start) / 60, 2)
        watched = judge.watch(generate, info.get("conditional", False))
        if i % args.fid_every == 0 or i == len(arms) - 1:
            report = measure(watched, real, args.n)
            row.update({"fid": report.fid, "kid": report.kid, **report.gate})
        else:
            for s in range(0, args.n, 256):
                watched(s, min(256, args.n - s), real.labels_for(s, min(256, args.n - s)))
        row["pixel_art"] = judge.scores()
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"n": args.n, "heldout": args.heldout, "arms": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"{'arm':16} {'kimg':>6} {'FID':>7} {'prec':>5} {'rec':>5} "
        f"{'nog raw':>7} {'nog snap':>8} {'label':>5} {'offpal':>6}"
    )
    for r in rows:
        p = r["pixel_art"]
        print(
            f"{r['arm']:16} {r['kimg']:6.0f} {r.get('fid', float('nan')):7.2f} "
            f"{r.get('precision', 0):5.3f} {r.get('recall', 0):5.3f} "
            f"{p.get('noggles_exact_raw', 0):7.3f} {p.get('noggles_exact_snapped', 0):8.3f} "
            f"{p.get('label_fidelity_snapped', float('nan')):5.3f} {p['off_palette_raw']:6.3f}"
        )


if __name__ == "__main__":
    main()
