"""Style mixing and latent walks as ws arrays: the one recipe both the CLI and the server render.

Both paths go seeds -> (artctl-latent-v1) z -> mapping -> ws edits -> synthesis; only who runs the
synthesis graph differs (the CLI directly, through mix_picture / walk_frames; the server through a
batcher), so a Mix RPC returns the CLI's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.latentwalk import FrameSpec, schedule, walk
from artctl.modelcard import label_index
from artctl.seeds import as_seed_array, latents
from artctl.stylemix import LayerRange, grid_pairs, mix_ws, mixing_grid, parse_layers
from artctl_serving.requests import check_labels, check_psi
from artctl_serving.runtime import ModelRuntime
from artctl_serving.styles import StyleGraphs


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
    card = graphs.card
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


def _psi_and_label(
    graphs: StyleGraphs, psi: float | None, label: str | None, n: int
) -> tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64] | None]:
    """A command line's psi and label (by name or index), checked as a request's would be."""
    card = graphs.card
    lab = label_index(label, card.label_names)
    return check_psi(card, None if psi is None else [psi], n), check_labels(
        card, [] if lab is None else [lab], n
    )


def mix_picture(
    graphs: StyleGraphs,
    content: list[int],
    style: list[int],
    layers: str,
    psi: float | None,
    label: str | None,
    grid: bool,
) -> tuple[npt.NDArray[np.uint8], LayerRange]:
    """One mixed image, or the StyleGAN-paper grid of content x style seeds; and the layer range."""
    span = parse_layers(layers, graphs.num_ws)
    c, s = grid_pairs(content, style)
    psi_arr, labels = _psi_and_label(graphs, psi, label, len(c))
    ws = mixed_ws(graphs, np.array(c, dtype=np.uint64), np.array(s, dtype=np.uint64), span, psi_arr, labels)
    images = graphs.synthesize(ws)
    if not grid:
        return images[0], span

    def plain(seeds: list[int]) -> npt.NDArray[np.uint8]:
        k = len(seeds)
        p = None if psi_arr is None else psi_arr[:1].repeat(k)
        lbl = None if labels is None else labels[:1].repeat(k)
        return graphs.synthesize(graphs.map_seeds(np.array(seeds, dtype=np.uint64), p, lbl))

    return mixing_grid(plain(content), plain(style), images), span


MAX_WALK_BYTES = 1 << 30  # frames (and their ws) of one in-process walk held in memory at once


def check_walk_size(graphs: StyleGraphs, frames: int) -> None:
    """Refuse a walk whose frames would not fit the in-process budget, before any work."""
    card = graphs.card
    per_frame = card.resolution * card.resolution * card.channels + graphs.num_ws * graphs.w_dim * 4
    need = frames * per_frame
    if need > MAX_WALK_BYTES:
        most = MAX_WALK_BYTES // per_frame
        raise ValueError(
            f"{frames} frames of {card.resolution}x{card.resolution} would need {need / 2**30:.1f} GiB "
            f"in memory; give at most {most} frames (or several walks)"
        )


def walk_frames(
    graphs: StyleGraphs,
    keys: list[int],
    frames: int,
    space: str,
    loop: bool,
    psi: float | None,
    label: str | None,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 64,
) -> npt.NDArray[np.uint8]:
    """Every frame of a walk through `keys`, rendered in this process `chunk` frames at a time."""
    check_walk_size(graphs, frames)
    psi_arr, labels = _psi_and_label(graphs, psi, label, 1)
    plan = walk_ws(
        graphs,
        keys,
        frames,
        space,
        loop,
        None if psi_arr is None else float(psi_arr[0]),
        None if labels is None else int(labels[0]),
    )
    return _in_chunks(lambda part: graphs.synthesize(plan.ws[part]), frames, chunk, on_progress)


def z_walk_frames(
    runtime: ModelRuntime,
    keys: list[int],
    frames: int,
    loop: bool,
    psi: float | None,
    label: str | None,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 64,
) -> npt.NDArray[np.uint8]:
    """A z walk through the model's own graph, for models without w-space companions (DCGANs):
    slerp between the seeds' latents, so the keyframes render exactly as the seeds do."""
    card = runtime.card
    per_frame = card.resolution * card.resolution * card.channels + card.z_dim * 4
    if frames * per_frame > MAX_WALK_BYTES:
        raise ValueError(
            f"{frames} frames would not fit in memory; give at most {MAX_WALK_BYTES // per_frame}"
        )
    z = walk(latents(as_seed_array(keys), card.z_dim), schedule(len(keys), frames, loop), "z")
    lab = label_index(label, card.label_names)
    psi_arr = check_psi(card, None if psi is None else [psi], frames)
    labels = check_labels(card, [] if lab is None else [lab], frames)
    return _in_chunks(
        lambda part: runtime.render_latents(
            z[part], None if psi_arr is None else psi_arr[part], None if labels is None else labels[part]
        ),
        frames,
        chunk,
        on_progress,
    )


def _in_chunks(
    render: Callable[[slice], npt.NDArray[np.uint8]],
    frames: int,
    chunk: int,
    on_progress: Callable[[int, int], None] | None,
) -> npt.NDArray[np.uint8]:
    """A walk's frames rendered `chunk` at a time (memory stays bounded), progress after each."""
    parts = []
    for start in range(0, frames, chunk):
        parts.append(render(slice(start, start + chunk)))
        if on_progress:
            on_progress(min(start + chunk, frames), frames)
    return np.concatenate(parts)
