"""Seeds to pixels in PyTorch, exactly as the exported graph and the server make them.

The one place the trainer turns seeds into images: sample grids, FID of checkpoints, the exporter's
parity check and the benchmarks all call `generate`, so what a grid shows is what the served
model renders (same latents from the seed contract, same quantisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from artctl.seeds import latents

PREVIEW_SEEDS = list(range(16))


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
    G: nn.Module,
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
    z_dim = int(cast(Any, G).z_dim)
    z = torch.from_numpy(latents(list(seeds), z_dim)).to(device)
    if labels is None:
        labels = preview_labels(seeds, getattr(G, "num_classes", 0))
    elif isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    psi_t = None
    if psi is not None and getattr(G, "has_psi", False):
        psi_t = torch.full((len(z),), float(psi), device=device)
    images = quantize(G(z, None if labels is None else labels.to(device), psi=psi_t)).cpu().numpy()
    G.train(was_training)
    return images
