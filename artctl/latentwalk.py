"""Latent walks: which keyframe pair and position t each frame takes, and slerp/lerp between them.

Keyframe i (of k seeds) sits at frame f_i = round(i * (N - 1) / (k - 1)) (N frames; with loop,
f_i = round(i * N / k) and the last segment returns to the first seed), so every seed is a frame.
Between keyframes, t = (f - f_i) / (f_{i+1} - f_i), computed from integers. At t = 0 and t = 1 a frame
*is* its keyframe's latent (copied, not recomputed), so walk endpoints render exactly as the seeds'
plain renders. z is interpolated spherically (z is Gaussian: a straight line through the origin
region would pass through latents the generator never sees), w linearly (as the StyleGAN papers do).

Numpy only; the CLI and the server's Interpolate RPC share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SPACES = ("z", "w")


class WalkError(ValueError):
    """A walk that cannot be made (too few seeds or frames, unknown space)."""


@dataclass(frozen=True)
class FrameSpec:
    """Frame `index` lies at position t in [0, 1] from keyframe `a` to keyframe `b` (indices into seeds)."""

    index: int
    a: int
    b: int
    t: float


def _round_div(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)


def schedule(keys: int, frames: int, loop: bool = False) -> list[FrameSpec]:
    """Frame positions for a walk through `keys` keyframes in `frames` frames."""
    if keys < 2:
        raise WalkError(f"a walk needs at least two seeds, got {keys}")
    if frames < keys:
        raise WalkError(f"{frames} frames cannot show {keys} seeds: give --frames >= {keys}")
    segments = keys if loop else keys - 1
    span = frames if loop else frames - 1
    marks = [_round_div(i * span, segments) for i in range(segments + 1)]
    out: list[FrameSpec] = []
    seg = 0
    for f in range(frames):
        while seg < segments - 1 and f >= marks[seg + 1]:
            seg += 1
        lo, hi = marks[seg], marks[seg + 1]
        out.append(FrameSpec(index=f, a=seg, b=(seg + 1) % keys, t=(f - lo) / (hi - lo)))
    return out


def slerp(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], t: float) -> npt.NDArray[np.float32]:
    """Spherical interpolation of two vectors (float64 inside); t = 0 and 1 return a and b exactly."""
    if t == 0.0:
        return a.copy()
    if t == 1.0:
        return b.copy()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    cos = float(np.clip(a64 @ b64 / max(na * nb, 1e-300), -1.0, 1.0))
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:  # (anti)parallel: every great circle works; lerp is the limit
        return ((1.0 - t) * a64 + t * b64).astype(np.float32)
    out = (np.sin((1.0 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], t: float) -> npt.NDArray[np.float32]:
    """Linear interpolation (float64 inside); t = 0 and 1 return a and b exactly."""
    if t == 0.0:
        return a.copy()
    if t == 1.0:
        return b.copy()
    return ((1.0 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.float32)


def walk(keys: npt.NDArray[np.float32], specs: list[FrameSpec], space: str) -> npt.NDArray[np.float32]:
    """Frame latents [N, ...] from keyframe latents [k, ...]: slerp for z (flattened), lerp for w."""
    if space not in SPACES:
        raise WalkError(f"unknown latent space {space!r}; choose z or w")
    fn = slerp if space == "z" else lerp
    flat = keys.reshape(len(keys), -1)
    frames = np.stack([fn(flat[s.a], flat[s.b], s.t) for s in specs])
    return frames.reshape(len(specs), *keys.shape[1:])
