"""Quality report of a trained run: FID/KID over training, a truncation sweep, per-label contact
sheets and a nearest-neighbour check. Writes PNGs and quality.json into --out (docs/quality.md
shows them); a benchmark, not a test.

    python -m bench.quality --run runs/default --data data/emoji64 --out docs/quality --n 1000

Every image comes from the seed contract (seeds 0..n-1, labels in the real set's proportions by a
fixed shuffle; contact sheets: seed i, label row), so anyone can re-derive the samples.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from artctl.imaging import image_grid
from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.metrics import (
    RealSet,
    cached_real_features,
    checkpoint_source,
    inception_features,
    measure,
    real_images,
)


def score(run: Path, real: RealSet, n: int, psi: float | None = None) -> dict[str, float]:
    generate, _ = checkpoint_source(run, psi)
    report = measure(generate, real, n)
    return {"fid": report.fid, "kid": report.kid, "kid_std": report.kid_std, "n": n}


def fid_curve(run: Path, real: RealSet, n: int, every: int) -> list[dict[str, Any]]:
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    chosen = [c for i, c in enumerate(checkpoints) if i % every == every - 1 or c == checkpoints[-1]]
    rows = []
    for ck in chosen:
        kimg = json.loads((ck / "state.json").read_text())["kimg"]
        rows.append({"checkpoint": ck.name, "kimg": kimg, **score(ck, real, n)})
        print(f"  {ck.name}: kimg {kimg:.1f}  FID {rows[-1]['fid']:.1f}", flush=True)
    return rows


def label_sheet(run: Path, out: Path, per_label: int = 8) -> Path:
    """One row per label: seeds 0..per_label-1 at psi 0.7 (the card's default)."""
    from artctl_trainer.networks import build_generator
    from artctl_trainer.preview import generate

    ck = load_checkpoint(run)
    net = ck.config.network
    G = build_generator(net)
    G.load_state_dict(ck.tensors(ck.generator_file))
    labels = net.label_names if net.num_classes else [""]
    seeds = list(range(per_label))
    rows = []
    for index, _ in enumerate(labels):
        label = np.full(per_label, index, dtype=np.int64) if net.num_classes else None
        rows.append(generate(G, seeds, label, psi=0.7))
    sheet = image_grid(np.concatenate(rows), cols=per_label)
    margin = 210
    canvas = Image.new("RGB", (sheet.width + margin, sheet.height), (40, 40, 40))
    canvas.paste(sheet, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    cell = sheet.height / len(labels)
    for i, name in enumerate(labels):
        draw.text((6, int(i * cell + cell / 2 - 6)), name or "(unconditional)", fill=(230, 230, 230))
    path = out / "contact-sheet-by-label.png"
    canvas.save(path)
    return path


def nearest_neighbours(run: Path, reals: np.ndarray, real_feats: np.ndarray, out: Path, k: int = 8) -> Path:
    """Top row: samples; bottom row: each sample's closest training image in Inception space."""
    generate, _ = checkpoint_source(run, 0.7)
    samples = generate(1000, k)
    feats = inception_features(samples)
    d = ((feats[:, None, :] - real_feats[None, :, :]) ** 2).sum(-1)
    nearest = reals[d.argmin(axis=1)]
    path = out / "nearest-neighbours.png"
    image_grid(np.concatenate([samples, nearest]), cols=k).save(path)
    return path


def plot(report: dict[str, Any], out: Path) -> Path:
    """FID over training (left) and FID against truncation psi (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    curve = report["curve"]
    a.plot([r["kimg"] for r in curve], [r["fid"] for r in curve], marker="o")
    a.set(xlabel="kimg", ylabel=f"FID ({curve[0]['n']} generated)", title="FID over training")
    sweep = report["psi_sweep"]
    b.plot([r["psi"] for r in sweep], [r["fid"] for r in sweep], marker="o")
    b.set(xlabel="truncation psi", ylabel=f"FID ({sweep[0]['n']} generated)", title="FID vs psi")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "fid.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/quality"))
    parser.add_argument("--n", type=int, default=1000, help="generated images for the final FID/KID")
    parser.add_argument("--curve-n", type=int, default=300, help="generated images per point of the curve")
    parser.add_argument("--curve-every", type=int, default=2, help="score every k-th checkpoint")
    parser.add_argument("--psi", default="0.5,0.7,1.0")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    net = load_checkpoint(args.run).config.network
    real = real_images(args.data, net.resolution, net.channels)
    real_feats = cached_real_features(real.images, real.fingerprint)
    print(f"real set: {len(real.images)} images", flush=True)
    report: dict[str, Any] = {"run": str(args.run), "data": args.data, "real_images": len(real.images)}
    report["final"] = score(args.run, real, args.n)
    print(f"final: FID {report['final']['fid']:.1f}  KID {report['final']['kid'] * 1000:.1f}e-3", flush=True)
    report["psi_sweep"] = [
        {"psi": float(p), **score(args.run, real, args.curve_n, float(p))} for p in args.psi.split(",")
    ]
    for row in report["psi_sweep"]:
        print(f"  psi {row['psi']}: FID {row['fid']:.1f}", flush=True)
    report["curve"] = fid_curve(args.run, real, args.curve_n, args.curve_every)
    report["contact_sheet"] = str(label_sheet(args.run, args.out))
    report["nearest_neighbours"] = str(nearest_neighbours(args.run, real.images, real_feats, args.out))
    report["plot"] = str(plot(report, args.out))
    report["seconds"] = time.perf_counter() - started
    (args.out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}/quality.json ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
