"""Style mixing and latent walks as ws arrays: the one recipe the CLI, gRPC and HTTP all render.

Every path goes seeds -> (artctl-latent-v1) z -> mapping -> ws edits -> synthesis. A mix or a walk
is planned here (the latents to map, then what to do with their ws); only who runs the graphs
differs: the CLI in process (mix_picture, walk_frames), the server through its batchers (walk_job,
and mix_latents / mix_mapped around ServedModel.map). So a Mix RPC, the HTTP mix URL and
`artctl mix` give the same pixels, and so do Interpolate, the HTTP walk URL and `artctl walk`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.capabilities import Capabilities, Labels, Psi, Space
from artctl.latentwalk import FrameSpec, schedule, walk
from artctl.modelcard import label_index
from artctl.seeds import as_seed_array, latents
from artctl.stylemix import LayerRange, grid_pairs, mix_ws, mixing_grid, parse_layers
from artctl_serving.registry import AnyJob, ServedModel
from artctl_serving.requests import check_labels, check_psi
from artctl_serving.rows import LatentRows
from artctl_serving.runtime import ModelRuntime
from artctl_serving.styles import StyleGraphs


def mix_latents(
    caps: Capabilities,
    content_seeds: npt.NDArray[np.uint64],
    style_seeds: npt.NDArray[np.uint64],
    psi: Psi = None,
    labels: Labels = None,
) -> LatentRows:
    """The latents a mix maps: the content seeds', then the style seeds' (pairs aligned), so one
    mapping call serves both sides (rows are independent: the same as two calls)."""
    content, style = as_seed_array(content_seeds), as_seed_array(style_seeds)
    if len(style) != len(content):
        raise ValueError(f"{len(content)} content seeds but {len(style)} style seeds")
    z = latents(np.concatenate([content, style]), caps.z_dim)
    both_psi = None if psi is None else np.concatenate([psi, psi])
    both_labels = None if labels is None else np.concatenate([labels, labels])
    return LatentRows(z, both_psi, both_labels)


def mix_mapped(ws: npt.NDArray[np.float32], layers: LayerRange) -> npt.NDArray[np.float32]:
    """ws of mix_latents' rows -> each content's ws with its style's on `layers`."""
    n = len(ws) // 2
    return mix_ws(ws[:n], ws[n:], layers)


def mixed_ws(
    graphs: StyleGraphs,
    content_seeds: npt.NDArray[np.uint64],
    style_seeds: npt.NDArray[np.uint64],
    layers: LayerRange,
    psi: Psi = None,
    labels: Labels = None,
) -> npt.NDArray[np.float32]:
    """ws [B, num_ws, w_dim] of content_seeds[i] with style_seeds[i] on `layers`, mapped in process."""
    rows = mix_latents(graphs.caps, content_seeds, style_seeds, psi, labels)
    return mix_mapped(graphs.map_rows(rows), layers)


@dataclass(frozen=True)
class WalkPlan:
    """A walk before the mapping: the latents to map (the frames' z in space z, the seeds' in w)."""

    specs: list[FrameSpec]
    seeds: list[int]
    space: Space
    latents: LatentRows

    def frames_ws(self, mapped: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Every frame's ws from the mapped latents: as they are (z), or lerped between seeds (w)."""
        return mapped if self.space == "z" else walk(mapped, self.specs, "w")


def walk_plan(
    caps: Capabilities,
    seeds: list[int],
    frames: int,
    space: Space,
    loop: bool = False,
    psi: float | None = None,
    label: int | None = None,
    only: int | None = None,
) -> WalkPlan:
    """The plan of a walk through `seeds` (z: slerp between the seeds' z, then map; w: map, then lerp
    between their ws), or of its frame `only`. psi and label are one value for the whole walk."""
    keys = as_seed_array(seeds)
    specs = schedule(len(keys), frames, loop)
    if only is not None:
        specs = [specs[only]]
    z_keys = latents(keys, caps.z_dim)
    z = walk(z_keys, specs, "z") if space == "z" else z_keys
    n = len(z)
    p = caps.default_psi if psi is None else psi
    psi_arr = np.full(n, p, dtype=np.float32) if caps.psi else None
    labels = None if label is None else np.full(n, label, dtype=np.int64)
    return WalkPlan(specs, [int(s) for s in keys], space, LatentRows(z, psi_arr, labels))


@dataclass(frozen=True)
class Walk:
    specs: list[FrameSpec]
    seeds: list[int]
    ws: npt.NDArray[np.float32]  # [frames, num_ws, w_dim]


def walk_ws(
    graphs: StyleGraphs,
    seeds: list[int],
    frames: int,
    space: Space,
    loop: bool = False,
    psi: float | None = None,
    label: int | None = None,
) -> Walk:
    """Every frame's ws, mapped in process."""
    plan = walk_plan(graphs.caps, seeds, frames, space, loop, psi, label)
    return Walk(specs=plan.specs, seeds=plan.seeds, ws=plan.frames_ws(graphs.map_rows(plan.latents)))


async def walk_job(model: ServedModel, plan: WalkPlan, deadline: float | None = None) -> AnyJob:
    """A walk's frames as a server renders them: the mapping batched, then synthesis; a model
    without a w space renders the frames' z through its own graph (space z only)."""
    if plan.space == "z":
        return await model.from_z(plan.latents, deadline)
    return model.from_w(plan.frames_ws(await model.map(plan.latents, deadline)))


def _psi_and_label(
    graphs: StyleGraphs, psi: float | None, label: str | None, n: int
) -> tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64] | None]:
    """A command line's psi and label (by name or index), checked as a request's would be."""
    caps = graphs.caps
    lab = label_index(label, list(caps.label_names))
    return check_psi(caps, None if psi is None else [psi], n), check_labels(
        caps, [] if lab is None else [lab], n
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
    caps = graphs.caps
    per_frame = caps.resolution * caps.resolution * caps.channels + graphs.num_ws * graphs.w_dim * 4
    need = frames * per_frame
    if need > MAX_WALK_BYTES:
        most = MAX_WALK_BYTES // per_frame
        raise ValueError(
            f"{frames} frames of {caps.resolution}x{caps.resolution} would need {need / 2**30:.1f} GiB "
            f"in memory; give at most {most} frames (or several walks)"
        )


def walk_frames(
    graphs: StyleGraphs,
    keys: list[int],
    frames: int,
    space: Space,
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
    caps = runtime.caps
    per_frame = caps.resolution * caps.resolution * caps.channels + caps.z_dim * 4
    if frames * per_frame > MAX_WALK_BYTES:
        raise ValueError(
            f"{frames} frames would not fit in memory; give at most {MAX_WALK_BYTES // per_frame}"
        )
    z = walk(latents(as_seed_array(keys), caps.z_dim), schedule(len(keys), frames, loop), "z")
    lab = label_index(label, list(caps.label_names))
    psi_arr = check_psi(caps, None if psi is None else [psi], frames)
    labels = check_labels(caps, [] if lab is None else [lab], frames)
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
