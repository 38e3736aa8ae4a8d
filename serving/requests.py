"""Request parsing for both APIs: every bad input becomes one readable INVALID_ARGUMENT.

A request is turned into validated numpy rows here, before any work is queued, so the batcher and
the runtime only ever see inputs the model can take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.kserve.v2 import grpc_service_pb2 as kpb
from artctl.latentwalk import WalkError, schedule
from artctl.modelcard import ModelCard
from artctl.stylemix import LayerRange, LayerRangeError, check_range, group_range, pair_seeds
from artctl.v1 import generator_pb2 as pb
from serving.errors import InvalidRequestError

PSI_RANGE = (0.0, 2.0)
FORMATS = {pb.IMAGE_FORMAT_PNG: "png", pb.IMAGE_FORMAT_RAW: "raw"}
GROUP_NAMES = {pb.LAYER_GROUP_COARSE: "coarse", pb.LAYER_GROUP_MIDDLE: "middle", pb.LAYER_GROUP_FINE: "fine"}
SPACE_NAMES = {pb.LATENT_SPACE_Z: "z", pb.LATENT_SPACE_W: "w"}

# KServe v2 tensors: input name -> (v2 datatype, little-endian numpy dtype, InferTensorContents field)
SEED, PSI, LABEL, IMAGE = "SEED", "TRUNCATION_PSI", "LABEL", "IMAGE"
KSERVE_DTYPES: dict[str, tuple[str, np.dtype[Any], str]] = {
    SEED: ("UINT64", np.dtype("<u8"), "uint64_contents"),
    PSI: ("FP32", np.dtype("<f4"), "fp32_contents"),
    LABEL: ("INT64", np.dtype("<i8"), "int64_contents"),
}


# -- the checks every API shares ---------------------------------------------------------------------


def check_seeds(seeds: Sequence[int] | npt.NDArray[np.uint64], max_seeds: int) -> npt.NDArray[np.uint64]:
    if len(seeds) == 0:
        raise InvalidRequestError("no seeds given: send at least one seed")
    if len(seeds) > max_seeds:
        raise InvalidRequestError(f"{len(seeds)} seeds in one request; the limit is {max_seeds}")
    return np.asarray(seeds, dtype=np.uint64)


def check_psi(card: ModelCard, psi: Sequence[float] | None, n: int) -> npt.NDArray[np.float32] | None:
    """None for models without a psi input; else one value per seed (default psi when absent)."""
    if not card.has_psi:
        if psi is not None and any(float(p) != 1.0 for p in psi):
            raise InvalidRequestError(f"model {card.name!r} has no truncation input; omit psi")
        return None
    if psi is None or len(psi) == 0:
        return np.full(n, card.default_psi, dtype=np.float32)
    if len(psi) not in (1, n):
        raise InvalidRequestError(f"give one psi or one per seed ({n}), got {len(psi)}")
    for p in psi:
        if not math.isfinite(p) or not PSI_RANGE[0] <= p <= PSI_RANGE[1]:
            raise InvalidRequestError(
                f"psi must be a finite number in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {p}"
            )
    return np.broadcast_to(np.asarray(psi, dtype=np.float32), (n,)).copy()


def check_labels(card: ModelCard, labels: Sequence[int], n: int) -> npt.NDArray[np.int64] | None:
    """None for unconditional models; else one label per seed, each within the model's labels."""
    if not card.has_label:
        if len(labels):
            raise InvalidRequestError(f"model {card.name!r} is unconditional; omit labels")
        return None
    if len(labels) == 0:
        return np.zeros(n, dtype=np.int64)
    if len(labels) not in (1, n):
        raise InvalidRequestError(f"give one label or one per seed ({n}), got {len(labels)}")
    count = len(card.label_names)
    for label in labels:
        if not 0 <= int(label) < count:
            raise InvalidRequestError(
                f"label {label} out of range: model {card.name!r} has labels 0..{count - 1}"
            )
    return np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()


def image_format(value: int) -> str:
    """The encoder name for a request's ImageFormat; INVALID_ARGUMENT for values we do not know."""
    fmt = FORMATS.get(value)  # type: ignore[call-overload]
    if fmt is None:
        raise InvalidRequestError(f"unknown image format {value}")
    return fmt


# -- artctl.v1.Generator -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRows:
    """Validated generator inputs: one row per image."""

    seeds: npt.NDArray[np.uint64]
    psi: npt.NDArray[np.float32] | None
    labels: npt.NDArray[np.int64] | None

    def columns(self) -> dict[str, np.ndarray]:
        """The rows as the batcher carries them."""
        out: dict[str, np.ndarray] = {"seeds": self.seeds}
        if self.psi is not None:
            out["psi"] = self.psi
        if self.labels is not None:
            out["labels"] = self.labels
        return out

    def psi_at(self, i: int) -> float | None:
        return None if self.psi is None else float(self.psi[i])

    def label_at(self, i: int) -> int | None:
        return None if self.labels is None else int(self.labels[i])


def generate_inputs(request: pb.GenerateRequest, card: ModelCard, max_seeds: int) -> SeedRows:
    seeds = check_seeds(request.seeds, max_seeds)
    psi = check_psi(card, [request.psi] if request.HasField("psi") else None, len(seeds))
    return SeedRows(seeds, psi, check_labels(card, list(request.labels), len(seeds)))


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


# -- inference.GRPCInferenceService (KServe v2) ------------------------------------------------------


def _kserve_tensor(request: kpb.ModelInferRequest, index: int) -> np.ndarray:
    tensor = request.inputs[index]
    if tensor.name not in KSERVE_DTYPES:
        raise InvalidRequestError(f"unexpected input {tensor.name!r}; inputs are {', '.join(KSERVE_DTYPES)}")
    datatype, dtype, field = KSERVE_DTYPES[tensor.name]
    if tensor.datatype != datatype:
        raise InvalidRequestError(
            f"input {tensor.name} must have datatype {datatype}, got {tensor.datatype!r}"
        )
    shape = list(tensor.shape)
    if len(shape) != 1 or shape[0] < 0:
        raise InvalidRequestError(f"input {tensor.name} must have shape [N], got {shape}")
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise InvalidRequestError("raw_input_contents must hold one entry per input")
        raw = request.raw_input_contents[index]
        if len(raw) != shape[0] * dtype.itemsize:
            raise InvalidRequestError(
                f"input {tensor.name}: {len(raw)} bytes do not match shape {shape} of {datatype}"
            )
        return np.frombuffer(raw, dtype=dtype)
    values = getattr(tensor.contents, field)
    if len(values) != shape[0]:
        raise InvalidRequestError(f"input {tensor.name}: {len(values)} values do not match shape {shape}")
    return np.asarray(values, dtype=dtype)


def infer_inputs(request: kpb.ModelInferRequest, card: ModelCard, max_seeds: int) -> SeedRows:
    """SEED (required), TRUNCATION_PSI and LABEL tensors -> validated rows; only IMAGE may be asked for."""
    arrays: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name in arrays:
            raise InvalidRequestError(f"input {tensor.name} given twice")
        arrays[tensor.name] = _kserve_tensor(request, i)
    if SEED not in arrays:
        raise InvalidRequestError(f"input {SEED} (UINT64 [N]) is required")
    for out in request.outputs:
        if out.name != IMAGE:
            raise InvalidRequestError(f"unknown output {out.name!r}; the model's output is {IMAGE}")
    seeds = check_seeds(arrays[SEED], max_seeds)
    n = len(seeds)
    for name in (PSI, LABEL):
        if name in arrays and len(arrays[name]) != n:
            raise InvalidRequestError(f"input {name} has {len(arrays[name])} values for {n} seeds")
    psi_in = arrays.get(PSI)
    psi = check_psi(card, None if psi_in is None else psi_in.tolist(), n)
    labels = check_labels(card, arrays[LABEL].tolist() if LABEL in arrays else [], n)
    return SeedRows(seeds, psi, labels)
