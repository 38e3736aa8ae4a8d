"""Where does a pixel-art model's FID come from? Score one checkpoint as it is and with one flaw
repaired at a time, on the same seeds against the same held-out set.

    .venv/bin/python -m bench.pixelart_probes models/nouns32-default --heldout data/nouns-heldout \\
        --n 1000 --out bench/results/nouns32-default-probes.json

A repair that moves FID a lot names the flaw worth a change to the recipe; one that moves it little
rules that flaw out before anyone builds for it. The repairs are diagnostics, never shipped:

  as-is        the EMA generator as the checkpoint holds it
  standing     its BatchNorm statistics re-estimated on its own samples (BigGAN's "standing
               statistics"): the EMA weights run with the raw generator's running statistics
  backdrop     every pixel of each image's corner colour recoloured to the nearer of the data's
               backdrop colours (the colour of the background, not its shape)
  despeckle    every pixel whose four neighbours share one other colour takes that colour
               (isolated stray pixels)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Images = npt.NDArray[np.uint8]


def recolour_backdrop(images: Images, backdrops: npt.NDArray[np.int64]) -> Images:
    """Each image's corner colour, wherever it appears, replaced by the nearest backdrop colour."""
    out = images.copy()
    for image in out:
        corner = image[0, 0, :3].astype(np.int64)
        mask = (image[:, :, :3] == image[0, 0, :3]).all(-1)
        image[mask, :3] = backdrops[((backdrops - corner) ** 2).sum(1).argmin()]
    return out


def despeckle(images: Images) -> tuple[Images, float]:
    """Isolated pixels (four neighbours of one other colour) repaired; and their share."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    up, down = padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]
    left, right = padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]
    isolated = (up == down).all(-1) & (up == left).all(-1) & (up == right).all(-1) & ~(up == images).all(-1)
    out = images.copy()
    out[isolated] = up[isolated]
    return out, float(isolated.mean())


def standing_generator(path: Path, batches: int = 100, batch: int = 64) -> Any:
    """The checkpoint's EMA generator with BatchNorm statistics averaged over its own samples."""
    import torch
    from torch import nn

    from artctl_trainer.checkpoint import load_checkpoint
    from artctl_trainer.networks import build_generator

    ck = load_checkpoint(path, require=("G_ema.safetensors",))
    net = ck.config.network
    G = build_generator(net)
    G.load_state_dict(ck.tensors(ck.generator_file))
    for module in G.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over every batch below
    G.train()
    rng = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn(batch, net.z_dim, generator=rng)
            labels = torch.randint(0, max(net.num_classes, 1), (batch,), generator=rng)
            G(z, labels if net.num_classes else None)
    return G.eval(), list(net.label_names) if net.num_classes else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from artctl.palette import palette_array
    from artctl_trainer.datasets import load_dataset
    from artctl_trainer.metrics import RealSet, checkpoint_source, label_indices, measure
    from artctl_trainer.networks import backdrop_colours
    from artctl_trainer.preview import generate as render

    data = load_dataset(args.heldout, 32, 3)
    real = RealSet.of(data)
    backdrops = palette_array(backdrop_colours(data)).astype(np.int64)[:, :3]
    base, _ = checkpoint_source(args.checkpoint)
    G, names = standing_generator(args.checkpoint)
    isolated: list[float] = []

    def standing(start: int, count: int, labels: Sequence[str] | None = None) -> Images:
        seeds = list(range(start, start + count))
        return render(G, seeds, label_indices(labels, names, seeds), psi=1.0)

    def repaired(start: int, count: int, labels: Sequence[str] | None = None) -> Images:
        images, share = despeckle(base(start, count, labels))
        isolated.append(share)
        return images

    probes: dict[str, Callable[..., Images]] = {
        "as-is": base,
        "standing": standing,
        "backdrop": lambda s, c, labels=None: recolour_backdrop(base(s, c, labels), backdrops),
        "despeckle": repaired,
    }
    rows = []
    for name, generate in probes.items():
        report = measure(generate, real, args.n)
        row = {"probe": name, "fid": report.fid, "kid": report.kid, **report.gate}
        rows.append(row)
        print(json.dumps(row), flush=True)
    _, real_isolated = despeckle(real.images[: args.n])
    doc = {
        "checkpoint": str(args.checkpoint),
        "n": args.n,
        "heldout": args.heldout,
        "isolated_pixel_share": {"generated": float(np.mean(isolated)), "real": real_isolated},
        "probes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'probe':10} {'FID':>7} {'KID x1e3':>8} {'prec':>5} {'rec':>5}")
    for r in rows:
        scores = f"{r['fid']:7.2f} {r['kid'] * 1e3:8.1f} {r['precision']:5.3f} {r['recall']:5.3f}"
        print(f"{r['probe']:10} {scores}")


if __name__ == "__main__":
    main()
