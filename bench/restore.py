"""Repair and walk benchmark (a benchmark, not a test).

1. Masked-region PSNR of `artctl restore` (w+ inversion of the kept pixels, then fill) against
   scikit-image's biharmonic inpainting (`skimage.restoration.inpaint_biharmonic`, the peer to
   beat) and a grey fill, on emoji with random 25 % masks (one square hole of half the side, at a
   seeded random position). PSNR is over the masked pixels only, all channels (RGBA), peak 255.
2. Interpolation frames/s on the CPU: `walk_ws` + the synthesis graph in ONNX Runtime, in z and w.

The checkpoint is --checkpoint (default: runs/default, the long emoji run, when it exists);
otherwise a tiny StyleGAN is trained on 64 emoji for --train-steps steps and the images come from
the other emoji (held out). With runs/default the images are from its training set: the table says
which.

    python -m bench.restore --images 6 --steps 100 --out bench/results   # table + restore.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _emoji(folder: Path, size: int) -> list[Path]:
    if not folder.is_dir():
        from artctl_trainer.emoji import render_emoji

        render_emoji(folder, size=size)
    return sorted(folder.rglob("*.png"))


def _tiny_checkpoint(work: Path, emoji: list[Path], steps: int) -> Path:
    """A small StyleGAN on the first 64 emoji (the rest are held out)."""
    from artctl_trainer.config import NetworkConfig, TrainConfig
    from artctl_trainer.training_loop import training_loop

    data = work / "train"
    for p in emoji[:64]:
        dest = data / "all" / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    net = NetworkConfig(
        architecture="stylegan",
        resolution=64,
        channels=4,
        z_dim=64,
        g_base=16,
        d_base=16,
        max_channels=64,
        mapping_layers=2,
    )
    cfg = TrainConfig(network=net, data=str(data), steps=steps, batch=16, sample_every=steps, log_every=50)
    return training_loop(cfg, work / "run")


def _masks(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    side = size // 2
    for _ in range(n):
        y, x = rng.integers(0, size - side + 1, 2)
        mask = np.zeros((size, size), dtype=bool)
        mask[y : y + side, x : x + side] = True
        out.append(mask)
    return out


def bench_restore(checkpoint: Path, images: list[Path], steps: int, perceptual: float) -> dict[str, Any]:
    from skimage.restoration import inpaint_biharmonic

    from artctl_trainer.restore import RestoreOptions, load_generator, masked_psnr, read_image, restore_image

    G, net = load_generator(checkpoint)
    names = list(net.label_names) if G.num_classes else []
    opts = RestoreOptions(steps=steps, perceptual_weight=perceptual)
    rows = []
    for path, mask in zip(images, _masks(len(images), net.resolution)):
        truth = read_image(path, net.channels)
        label = names.index(path.parent.name) if path.parent.name in names else None
        started = time.perf_counter()
        result = restore_image(G, truth, mask, opts, label)
        seconds = time.perf_counter() - started
        damaged = truth.astype(np.float64) / 255.0
        damaged[mask] = 0.0
        bih = inpaint_biharmonic(damaged, mask, channel_axis=-1)
        bih_u8 = np.clip(np.round(bih * 255.0), 0, 255).astype(np.uint8)
        grey = truth.copy()
        grey[mask] = 128
        rows.append(
            {
                "image": f"{path.parent.name}/{path.name}",
                "restore_psnr": masked_psnr(result.restored, truth, mask),
                "biharmonic_psnr": masked_psnr(bih_u8, truth, mask),
                "grey_psnr": masked_psnr(grey, truth, mask),
                "restore_seconds": seconds,
            }
        )
    return {"rows": rows, **{k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}}


def bench_walk(checkpoint: Path, work: Path, frames: int) -> dict[str, Any]:
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.creative import walk_ws
    from artctl_serving.runtime import load_model
    from artctl_serving.styles import load_style_graphs

    model = work / "walk.onnx"
    export_checkpoint(checkpoint, model, parity_seeds=16)
    graphs = load_style_graphs(load_model(model))
    out = {}
    for space in ("z", "w"):
        walk_ws(graphs, [1, 2], 8, space)  # warm-up
        graphs.synthesize(walk_ws(graphs, [1, 2], 8, space).ws)
        started = time.perf_counter()
        plan = walk_ws(graphs, list(range(1, 9)), frames, space, loop=True)
        for s in range(0, frames, 32):  # the server's default chunking is max_batch; 32 here
            graphs.synthesize(plan.ws[s : s + 32])
        out[space] = frames / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--emoji", type=Path, default=REPO / "data" / "emoji64")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--perceptual", type=float, default=0.1)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    emoji = _emoji(args.emoji, 64)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None and (REPO / "runs" / "default" / "latest").is_file():
            checkpoint = REPO / "runs" / "default"
        if checkpoint is None:
            checkpoint = _tiny_checkpoint(work, emoji, args.train_steps)
            pool, held_out = emoji[64:], True
        else:
            # Held out when the images do not come from the folder the checkpoint was trained on
            # (e.g. multi-code-point emoji sequences, which `artctl data emoji` never renders).
            from artctl_trainer.checkpoint import load_checkpoint

            trained_on = Path(load_checkpoint(checkpoint).config.data).resolve()
            pool, held_out = emoji, trained_on != Path(args.emoji).resolve()
        rng = np.random.default_rng(1)
        picks = [
            pool[i] for i in sorted(rng.choice(len(pool), size=min(args.images, len(pool)), replace=False))
        ]
        restore = bench_restore(checkpoint, picks, args.steps, args.perceptual)
        walk = bench_walk(checkpoint, work, args.frames)
    doc = {
        "checkpoint": str(checkpoint),
        "held_out": held_out,
        "steps": args.steps,
        "perceptual_weight": args.perceptual,
        "mask": "one square hole, half the side (25 %), seeded random position",
        "restore": restore,
        "interpolation_frames_per_s_cpu": walk,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }
    print(f"checkpoint {checkpoint} ({'held-out' if held_out else 'training-set'} emoji), {args.steps} steps")
    print(f"{'image':48} {'restore':>8} {'biharm':>8} {'grey':>8} {'s':>6}   (masked PSNR, dB)")
    for r in restore["rows"]:
        print(
            f"{r['image']:48} {r['restore_psnr']:8.2f} {r['biharmonic_psnr']:8.2f} {r['grey_psnr']:8.2f} "
            f"{r['restore_seconds']:6.1f}"
        )
    print(
        f"{'mean':48} {restore['restore_psnr']:8.2f} {restore['biharmonic_psnr']:8.2f} "
        f"{restore['grey_psnr']:8.2f} {restore['restore_seconds']:6.1f}"
    )
    print(
        f"interpolation, CPU: z {walk['z']:.0f} frames/s, w {walk['w']:.0f} frames/s ({args.frames} frames)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restore.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
