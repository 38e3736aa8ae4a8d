"""Checks for Mix and Interpolate requests: every bad input becomes one readable INVALID_ARGUMENT."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from artctl.latentwalk import WalkError, schedule
from artctl.modelcard import ModelCard
from artctl.stylemix import LayerRange, LayerRangeError, check_range, group_range, pair_seeds
from artctl.v1 import generator_pb2 as pb
from serving.validation import InvalidRequestError, check_labels, check_psi, check_seeds

GROUP_NAMES = {pb.LAYER_GROUP_COARSE: "coarse", pb.LAYER_GROUP_MIDDLE: "middle", pb.LAYER_GROUP_FINE: "fine"}
SPACE_NAMES = {pb.LATENT_SPACE_Z: "z", pb.LATENT_SPACE_W: "w"}


@dataclass(frozen=True)
class MixInputs:
    content: npt.NDArray[np.uint64]
    style: npt.NDArray[np.uint64]
    layers: LayerRange
    psi: npt.NDArray[np.float32] | None
    labels: npt.NDArray[np.int64] | None


@dataclass(frozen=True)
class WalkInputs:
    seeds: list[int]
    frames: int
    space: str
    loop: bool
    psi: float | None
    label: int | None


def request_layers(request: pb.MixRequest, num_ws: int) -> LayerRange:
    try:
        if request.group in GROUP_NAMES:
            return group_range(GROUP_NAMES[request.group], num_ws)
        if request.group != pb.LAYER_GROUP_UNSPECIFIED:
            raise InvalidRequestError(f"unknown layer group {request.group}")
        return check_range(request.first_layer, request.last_layer, num_ws)
    except LayerRangeError as exc:
        raise InvalidRequestError(str(exc)) from None


def mix_inputs(request: pb.MixRequest, card: ModelCard, num_ws: int, max_seeds: int) -> MixInputs:
    """Paired seeds (a single seed on one side pairs with all), the layer range, psi and labels."""
    content = check_seeds(request.content_seeds, max_seeds)
    style = check_seeds(request.style_seeds, max_seeds)
    try:
        c, s = pair_seeds([int(x) for x in content], [int(x) for x in style])
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    pairs = check_seeds(c, max_seeds)
    psi = check_psi(card, [request.psi] if request.HasField("psi") else None, len(pairs))
    labels = check_labels(card, list(request.labels), len(pairs))
    return MixInputs(
        content=pairs,
        style=np.asarray(s, dtype=np.uint64),
        layers=request_layers(request, num_ws),
        psi=psi,
        labels=labels,
    )


def walk_inputs(request: pb.InterpolateRequest, card: ModelCard, max_frames: int) -> WalkInputs:
    seeds = check_seeds(request.seeds, max_frames)
    if request.frames > max_frames:
        raise InvalidRequestError(f"{request.frames} frames in one request; the limit is {max_frames}")
    if request.space not in SPACE_NAMES:
        raise InvalidRequestError(f"unknown latent space {request.space}")
    try:
        schedule(len(seeds), request.frames, request.loop)
    except WalkError as exc:
        raise InvalidRequestError(str(exc)) from None
    psi = check_psi(card, [request.psi] if request.HasField("psi") else None, 1)
    labels = check_labels(card, [request.label] if request.HasField("label") else [], 1)
    return WalkInputs(
        seeds=[int(x) for x in seeds],
        frames=request.frames,
        space=SPACE_NAMES[request.space],
        loop=request.loop,
        psi=None if psi is None else float(psi[0]),
        label=None if labels is None else int(labels[0]),
    )
