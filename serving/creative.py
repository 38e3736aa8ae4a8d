"""Style mixing and latent walks as ws arrays: the one recipe both the CLI and the server render.

Both paths go seeds -> (artctl-latent-v1) z -> mapping -> ws edits -> synthesis; only who runs the
synthesis graph differs (the CLI directly, the server through a batcher), so a Mix RPC returns the
CLI's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.latentwalk import FrameSpec, schedule, walk
from artctl.seeds import as_seed_array, latents
from artctl.stylemix import LayerRange, mix_ws
from serving.styles import StyleGraphs


def mixed_ws(
    graphs: StyleGraphs,
    content_seeds: npt.NDArray[np.uint64],
    style_seeds: npt.NDArray[np.uint64],
    layers: LayerRange,
    psi: npt.NDArray[np.float32] | None = None,
    labels: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float32]:
    """ws [B, num_ws, w_dim] of content_seeds[i] with style_seeds[i] on `layers` (pairs aligned)."""
    content = as_seed_array(content_seeds)
    style = as_seed_array(style_seeds)
    n = len(content)
    if len(style) != n:
        raise ValueError(f"{n} content seeds but {len(style)} style seeds")
    # One mapping call for both sides: rows are independent, so this is the same as two calls.
    both_psi = None if psi is None else np.concatenate([psi, psi])
    both_labels = None if labels is None else np.concatenate([labels, labels])
    ws = graphs.map_seeds(np.concatenate([content, style]), both_psi, both_labels)
    return mix_ws(ws[:n], ws[n:], layers)


@dataclass(frozen=True)
class Walk:
    specs: list[FrameSpec]
    seeds: list[int]
    ws: npt.NDArray[np.float32]  # [frames, num_ws, w_dim]


def walk_ws(
    graphs: StyleGraphs,
    seeds: list[int],
    frames: int,
    space: str,
    loop: bool = False,
    psi: float | None = None,
    label: int | None = None,
) -> Walk:
    """Every frame's ws: slerp between the seeds' z then map (space z), or lerp between their ws (w)."""
    keys = as_seed_array(seeds)
    specs = schedule(len(keys), frames, loop)
    card = graphs.runtime.card
    p = card.default_psi if psi is None else psi
    if space == "z":
        z = walk(latents(keys, card.z_dim), specs, "z")
        psi_arr = np.full(len(z), p, dtype=np.float32)
        labels = None if label is None else np.full(len(z), label, dtype=np.int64)
        ws = graphs.map_z(z, psi_arr, labels)
    else:
        psi_arr = np.full(len(keys), p, dtype=np.float32)
        labels = None if label is None else np.full(len(keys), label, dtype=np.int64)
        ws = walk(graphs.map_seeds(keys, psi_arr, labels), specs, space)
    return Walk(specs=specs, seeds=[int(s) for s in keys], ws=ws)
