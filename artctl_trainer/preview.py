"""Seeds to pixels in PyTorch, exactly as the exported graph and the server make them.

The one place the trainer turns seeds into images: sample grids, FID of checkpoints, the exporter's
parity check and the benchmarks all call `generate`, so what a grid shows is what the served
model renders (same latents from the seed contract, same quantisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from artctl.imaging import display_scale, tile
from artctl.seeds import latents

if TYPE_CHECKING:
    from artctl_trainer.contract import GeneratorNet

GRID_COLS = 8  # seeds 0..7 across; rows are the labels (conditional) or the next seeds
GRID_ROWS = 16  # at most this many rows (labels beyond it are left out, and the title says so)
SERVED_PSI = 0.7  # the truncation an exported card defaults to: grids show what the server renders


def quantize(images_nchw: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 NHWC, exactly as the exported ONNX graph does (round half to even)."""
    scaled = ((images_nchw + 1.0) * 127.5).clamp(0.0, 255.0).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1)


def preview_labels(seeds: Sequence[int], num_classes: int) -> torch.Tensor | None:
    """Labels for preview grids and parity checks: seed i shows label i mod num_classes."""
    if not num_classes:
        return None
    return torch.tensor([int(s) % num_classes for s in seeds], dtype=torch.int64)


@torch.no_grad()
def generate(
    G: GeneratorNet,
    seeds: Sequence[int],
    labels: torch.Tensor | npt.NDArray[np.int64] | None = None,
    psi: float | None = None,
) -> npt.NDArray[np.uint8]:
    """uint8 NHWC images of `seeds` (latents from artctl-latent-v1), in eval mode.

    Labels default to seed i -> label i mod num_classes; psi (StyleGAN-type models only) to none.
    """
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    z = torch.from_numpy(latents(list(seeds), G.z_dim)).to(device)
    if labels is None:
        labels = preview_labels(seeds, G.num_classes)
    elif isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    psi_t = None
    if psi is not None and G.has_psi:
        psi_t = torch.full((len(z),), float(psi), device=device)
    drawn = quantize(G(z, None if labels is None else labels.to(device), psi=psi_t))
    if G.snap is not None:  # as the exported graph draws it
        drawn = G.snap.uint8(drawn)
    images: npt.NDArray[np.uint8] = drawn.cpu().numpy()
    G.train(was_training)
    return images


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def sample_grid(
    G: GeneratorNet, label_names: Sequence[str], title: str, psi: float | None = SERVED_PSI
) -> Any:
    """The training run's picture of its generator: seeds 0-7 across, one row per label (or seeds
    8-15 below for an unconditional model), tiles of 64 px or more, each row and column named,
    at the psi the exported model serves by default."""
    from PIL import Image, ImageDraw

    classes = G.num_classes
    psi = psi if G.has_psi else None
    if classes:
        rows = list(range(min(classes, GRID_ROWS)))
        seeds = list(range(GRID_COLS)) * len(rows)
        labels = torch.tensor([r for r in rows for _ in range(GRID_COLS)], dtype=torch.int64)
        row_titles = [str(label_names[r]) if r < len(label_names) else f"label {r}" for r in rows]
        if classes > GRID_ROWS:
            title += f"  (first {GRID_ROWS} of {classes} labels)"
    else:
        seeds, labels = list(range(2 * GRID_COLS)), None
        row_titles = [f"seeds {r * GRID_COLS}-{r * GRID_COLS + GRID_COLS - 1}" for r in range(2)]
    images = generate(G, seeds, labels, psi)
    _, h, w, _ = images.shape
    scale = display_scale(max(h, w), 64)
    tw, th, pad = w * scale, h * scale, 3
    font = _font(12)
    left = 12 + max(int(font.getlength(t)) for t in row_titles)
    top = 40
    cols, nrows = GRID_COLS, len(row_titles)
    sheet = Image.new("RGB", (left + cols * (tw + pad) + pad, top + nrows * (th + pad) + pad), (28, 28, 28))
    draw = ImageDraw.Draw(sheet)
    shown = f"psi {psi:g} (as served)" if psi is not None else "no truncation"
    draw.text((8, 4), f"{title}   {shown}", fill=(235, 235, 235), font=font)
    for c in range(cols):
        seed = seeds[c] if classes else c
        draw.text(
            (left + c * (tw + pad) + 2, top - 16),
            f"seed {seed}" if classes else f"+{c}",
            fill=(170, 170, 170),
            font=font,
        )
    for r, name in enumerate(row_titles):
        y = top + r * (th + pad)
        draw.text((6, y + th // 2 - 7), name, fill=(220, 220, 220), font=font)
        for c in range(cols):
            sheet.paste(tile(images[r * cols + c], scale), (left + c * (tw + pad) + pad, y + pad))
    return sheet
