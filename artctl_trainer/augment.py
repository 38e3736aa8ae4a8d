"""Augmentation for small data sets, applied to reals and fakes alike so D never sees the difference.

- DiffAugment (Zhao et al. 2020): colour, translation and cutout on every image, differentiable so
  G's gradient flows through them.
- ADA (Karras et al. 2020): the same kind of ops, each applied per image with probability p, where p
  follows the overfitting heuristic r_t = E[sign(D(real))]: up when r_t > target, down when below.

All randomness comes from the loop's torch.Generator, so a resumed run is bit-for-bit identical.
Draws happen on the generator's device (the loop keeps it on CPU) and are then moved to the images'
device, so the random stream does not depend on where training runs.
Colour ops touch RGB only; an alpha channel moves with the geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rand(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, generator=gen, dtype=x.dtype, device=gen.device).to(x.device)


def _randint(x: torch.Tensor, gen: torch.Generator, low: int, high: int) -> torch.Tensor:
    """One integer in [low, high) per image, shaped [B, 1, 1], on x's device."""
    b = x.shape[0]
    return torch.randint(low, high, (b, 1, 1), generator=gen, device=gen.device).to(x.device)


def _on_rgb(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if x.shape[1] == 3:
        return fn(x)
    return torch.cat([fn(x[:, :3]), x[:, 3:]], dim=1)


def brightness(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    shift = _rand(x, gen, 1, 1, 1) - 0.5
    return _on_rgb(x, lambda rgb: rgb + shift)


def saturation(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    factor = _rand(x, gen, 1, 1, 1) * 2.0

    def fn(rgb: torch.Tensor) -> torch.Tensor:
        mean = rgb.mean(dim=1, keepdim=True)
        return (rgb - mean) * factor + mean

    return _on_rgb(x, fn)


def contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    factor = _rand(x, gen, 1, 1, 1) + 0.5

    def fn(rgb: torch.Tensor) -> torch.Tensor:
        mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
        return (rgb - mean) * factor + mean

    return _on_rgb(x, fn)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return contrast(saturation(brightness(x, gen), gen), gen)


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels, filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(x, gen, -sy, sy + 1)
    tx = _randint(x, gen, -sx, sx + 1)
    gy = (torch.arange(h, device=x.device).view(1, h, 1) + ty + 1).clamp(0, h + 1)
    gx = (torch.arange(w, device=x.device).view(1, 1, w) + tx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a ratio * size square per image, centred anywhere (so it may be clipped by the border)."""
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _randint(x, gen, 0, h + (1 - ch % 2))
    cx = _randint(x, gen, 0, w + (1 - cw % 2))
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    dy, dx = ys - cy + ch // 2, xs - cx + cw // 2
    inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def xflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x.flip(3)


def rotate90(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    k = int(torch.randint(1, 4, (1,), generator=gen, device=gen.device))
    return torch.rot90(x, k, dims=(2, 3))


DIFFAUG_OPS: dict[str, Op] = {"color": color, "translation": translation, "cutout": cutout}
ADA_OPS: tuple[Op, ...] = (xflip, rotate90, translation, brightness, contrast, saturation, cutout)


def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    for name in policy.split(","):
        if name:
            x = DIFFAUG_OPS[name](x, gen)
    return x


def ada_augment(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Each op hits each image independently with probability p (p < ~0.8 keeps it non-leaking)."""
    if p <= 0.0:
        return x
    for op in ADA_OPS:
        hit = (torch.rand(x.shape[0], generator=gen, device=gen.device) < p).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(hit, op(x, gen), x)
    return x


@dataclass
class AdaController:
    """Adapts p from the sign of D's outputs on (augmented) reals; its state lives in checkpoints."""

    p: float = 0.0
    target: float = 0.6
    kimg: float = 100.0
    sign_sum: float = 0.0
    count: int = 0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        self.add(float(torch.sign(real_logits.detach()).sum()), int(real_logits.numel()))

    def add(self, sign_sum: float, count: int) -> None:
        """Add sign statistics (under DDP: summed over all ranks, so every rank keeps the same p)."""
        self.sign_sum += sign_sum
        self.count += count

    @property
    def rt(self) -> float:
        return self.sign_sum / self.count if self.count else 0.0

    def adjust(self) -> None:
        """Move p by (images seen) / (kimg * 1000) towards keeping r_t at the target."""
        if not self.count:
            return
        direction = 1.0 if self.rt > self.target else -1.0
        self.p = min(1.0, max(0.0, self.p + direction * self.count / (self.kimg * 1000.0)))
        self.sign_sum, self.count = 0.0, 0

    def state(self) -> dict[str, float]:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count}

    def load(self, state: dict[str, float]) -> None:
        self.p, self.sign_sum, self.count = float(state["p"]), float(state["sign_sum"]), int(state["count"])
