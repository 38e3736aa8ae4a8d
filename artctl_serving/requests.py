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

from artctl.capabilities import Capabilities, Space
from artctl.delivery import MAX_SCALE
from artctl.kserve.v2 import grpc_service_pb2 as kpb
from artctl.latentwalk import WalkError, schedule
from artctl.stylemix import LayerRange, LayerRangeError, check_range, group_range, pair_seeds
from artctl.v1 import generator_pb2 as pb
from artctl_serving.errors import InvalidRequestError, RequestTooLargeError
from artctl_serving.rows import SeedRows

PSI_RANGE = (0.0, 2.0)
FORMATS = {pb.IMAGE_FORMAT_PNG: "png", pb.IMAGE_FORMAT_RAW: "raw"}
GROUP_NAMES = {pb.LAYER_GROUP_COARSE: "coarse", pb.LAYER_GROUP_MIDDLE: "middle", pb.LAYER_GROUP_FINE: "fine"}
SPACE_NAMES: dict[int, Space] = {pb.LATENT_SPACE_Z: "z", pb.LATENT_SPACE_W: "w"}

# KServe v2 tensors: input name -> (v2 datatype, little-endian numpy dtype, InferTensorContents field)
SEED, PSI, LABEL, IMAGE = "SEED", "TRUNCATION_PSI", "LABEL", "IMAGE"
KSERVE_DTYPES: dict[str, tuple[str, np.dtype[Any], str]] = {
    SEED: ("UINT64", np.dtype("<u8"), "uint64_contents"),
    PSI: ("FP32", np.dtype("<f4"), "fp32_contents"),
    LABEL: ("INT64", np.dtype("<i8"), "int64_contents"),
}


MAX_TRAITS_BYTES = 16 * 1024  # a request's traits are echoed into every artwork's metadata
RESPONSE_OVERHEAD = 1024  # bytes per artwork besides its pixels and metadata (fields, framing)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: seeds (frames, pairs) and bytes of one response message."""

    max_seeds: int = 1024
    max_message_bytes: int = 64 * 1024 * 1024


# -- the checks every API shares ---------------------------------------------------------------------


def check_seeds(seeds: Sequence[int] | npt.NDArray[np.uint64], max_seeds: int) -> npt.NDArray[np.uint64]:
    if len(seeds) == 0:
        raise InvalidRequestError("no seeds given: send at least one seed")
    if len(seeds) > max_seeds:
        raise InvalidRequestError(f"{len(seeds)} seeds in one request; the limit is {max_seeds}")
    return np.asarray(seeds, dtype=np.uint64)


def check_psi(
    caps: Capabilities, psi: Sequence[float] | None, n: int, name: str = "this model"
) -> npt.NDArray[np.float32] | None:
    """None for models without a psi input; else one value per seed (default psi when absent).

    `name` is the model's name on this server, for the errors.
    """
    if not caps.psi:
        if psi is not None and any(float(p) != 1.0 for p in psi):
            raise InvalidRequestError(f"model {name!r} has no truncation input; omit psi")
        return None
    if psi is None or len(psi) == 0:
        return np.full(n, caps.default_psi, dtype=np.float32)
    if len(psi) not in (1, n):
        raise InvalidRequestError(f"give one psi or one per seed ({n}), got {len(psi)}")
    for p in psi:
        if not math.isfinite(p) or not PSI_RANGE[0] <= p <= PSI_RANGE[1]:
            raise InvalidRequestError(
                f"psi must be a finite number in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {p}"
            )
    return np.broadcast_to(np.asarray(psi, dtype=np.float32), (n,)).copy()


def check_labels(
    caps: Capabilities, labels: Sequence[int], n: int, name: str = "this model"
) -> npt.NDArray[np.int64] | None:
    """None for unconditional models; else one label per seed, each within the model's labels."""
    if not caps.conditional:
        if len(labels):
            raise InvalidRequestError(f"model {name!r} is unconditional; omit labels")
        return None
    if len(labels) == 0:
        return np.zeros(n, dtype=np.int64)
    if len(labels) not in (1, n):
        raise InvalidRequestError(f"give one label or one per seed ({n}), got {len(labels)}")
    count = len(caps.label_names)
    for label in labels:
        if not 0 <= int(label) < count:
            raise InvalidRequestError(f"label {label} out of range: model {name!r} has labels 0..{count - 1}")
    return np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()


def check_response(
    n: int, shape: tuple[int, int, int], extra_bytes: int, limits: Limits, streamed: bool
) -> None:
    """Refuse before any work a response that could not be sent: the whole reply of a unary call, or
    one message of a stream, must fit the message limit (a PNG is at most its raw pixels plus a
    little)."""
    h, w, c = shape
    per_item = h * w * c + extra_bytes + RESPONSE_OVERHEAD
    size = per_item if streamed else n * per_item
    if size > limits.max_message_bytes:
        mib = limits.max_message_bytes / 2**20
        hint = "ask for smaller images" if streamed else "ask for fewer images per call, or stream them"
        raise RequestTooLargeError(
            f"the response would be about {size / 2**20:.1f} MiB, over this server's message limit of "
            f"{mib:g} MiB; {hint}"
        )


def check_traits(traits: dict[str, str]) -> int:
    """The traits' size in bytes (they are copied into every artwork's metadata), within the limit."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in traits.items())
    if size > MAX_TRAITS_BYTES:
        raise InvalidRequestError(f"traits hold {size} bytes; the limit is {MAX_TRAITS_BYTES}")
    return size


def request_scale(value: int) -> int:
    """A request's upscale: 0 (unset, as proto3 sends it) is 1; INVALID_ARGUMENT outside 1..16."""
    if value == 0:
        return 1
    if not 1 <= value <= MAX_SCALE:
        raise InvalidRequestError(f"scale must be in 1..{MAX_SCALE} (0 or unset means 1), got {value}")
    return int(value)


def check_cutoff(caps: Capabilities, value: int | None, name: str = "this model") -> int | None:
    """A request's truncation cutoff: None for 0 or unset (psi on every layer); else 1..num_ws, on a
    model with a w space only."""
    if not value:
        return None
    if not caps.truncation_cutoff or caps.w_space is None:
        raise InvalidRequestError(
            f"model {name!r} has no w space: a truncation cutoff needs a StyleGAN-type model"
        )
    if not 1 <= value <= caps.w_space.num_ws:
        raise InvalidRequestError(
            f"truncation_cutoff must be in 1..{caps.w_space.num_ws} (the model's ws; 0: every layer), "
            f"got {value}"
        )
    return int(value)


def image_format(value: int) -> str:
    """The encoder name for a request's ImageFormat; INVALID_ARGUMENT for values we do not know."""
    fmt = FORMATS.get(value)  # type: ignore[call-overload]
    if fmt is None:
        raise InvalidRequestError(f"unknown image format {value}")
    return fmt


# -- artctl.v1.Generator -----------------------------------------------------------------------------


def generate_inputs(
    request: pb.GenerateRequest, caps: Capabilities, name: str, limits: Limits, streamed: bool = False
) -> SeedRows:
    """Seeds, psi and labels of a Generate(Stream) request, refused early if the reply could not be sent."""
    seeds = check_seeds(request.seeds, limits.max_seeds)
    image_format(request.format)
    size = caps.resolution * request_scale(request.scale)
    traits = check_traits(dict(request.traits))
    metadata = traits + RESPONSE_OVERHEAD if request.include_metadata else 0
    check_response(len(seeds), (size, size, caps.channels), metadata, limits, streamed)
    psi = check_psi(caps, [request.psi] if request.HasField("psi") else None, len(seeds), name)
    return SeedRows(seeds, psi, check_labels(caps, list(request.labels), len(seeds), name))


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
    space: Space
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


def mix_inputs(
    request: pb.MixRequest, caps: Capabilities, name: str, num_ws: int, limits: Limits
) -> MixInputs:
    """Paired seeds (a single seed on one side pairs with all), the layer range, psi and labels."""
    max_seeds = limits.max_seeds
    content = check_seeds(request.content_seeds, max_seeds)
    style = check_seeds(request.style_seeds, max_seeds)
    try:
        c, s = pair_seeds([int(x) for x in content], [int(x) for x in style])
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    pairs = check_seeds(c, max_seeds)
    check_response(len(pairs), (caps.resolution, caps.resolution, caps.channels), 0, limits, streamed=False)
    psi = check_psi(caps, [request.psi] if request.HasField("psi") else None, len(pairs), name)
    labels = check_labels(caps, list(request.labels), len(pairs), name)
    return MixInputs(
        content=pairs,
        style=np.asarray(s, dtype=np.uint64),
        layers=request_layers(request, num_ws),
        psi=psi,
        labels=labels,
    )


def walk_inputs(request: pb.InterpolateRequest, caps: Capabilities, name: str, limits: Limits) -> WalkInputs:
    max_frames = limits.max_seeds
    seeds = check_seeds(request.seeds, max_frames)
    if request.frames > max_frames:
        raise InvalidRequestError(f"{request.frames} frames in one request; the limit is {max_frames}")
    if request.space not in SPACE_NAMES:
        raise InvalidRequestError(f"unknown latent space {request.space}")
    try:
        schedule(len(seeds), request.frames, request.loop)
    except WalkError as exc:
        raise InvalidRequestError(str(exc)) from None
    psi = check_psi(caps, [request.psi] if request.HasField("psi") else None, 1, name)
    labels = check_labels(caps, [request.label] if request.HasField("label") else [], 1, name)
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
    """One input tensor, from raw_input_contents or from contents (the protocol forbids both)."""
    tensor = request.inputs[index]
    if tensor.name not in KSERVE_DTYPES:
        raise InvalidRequestError(f"unexpected input {tensor.name!r}; inputs are {', '.join(KSERVE_DTYPES)}")
    datatype, dtype, field = KSERVE_DTYPES[tensor.name]
    if tensor.datatype != datatype:
        raise InvalidRequestError(
            f"input {tensor.name} must have datatype {datatype}, got {tensor.datatype!r}"
        )
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or shape[0] < 0 or shape[1:] not in ([], [1]):
        raise InvalidRequestError(f"input {tensor.name} must have shape [N] or [N, 1], got {shape}")
    values = getattr(tensor.contents, field)
    if request.raw_input_contents:
        if tensor.HasField("contents"):
            raise InvalidRequestError(
                f"input {tensor.name}: give its values in contents or in raw_input_contents, not both"
            )
        if len(request.raw_input_contents) != len(request.inputs):
            raise InvalidRequestError("raw_input_contents must hold one entry per input")
        raw = request.raw_input_contents[index]
        if len(raw) != shape[0] * dtype.itemsize:
            raise InvalidRequestError(
                f"input {tensor.name}: {len(raw)} bytes do not match shape {shape} of {datatype}"
            )
        return np.frombuffer(raw, dtype=dtype)
    if len(values) != shape[0]:
        raise InvalidRequestError(f"input {tensor.name}: {len(values)} values do not match shape {shape}")
    return np.asarray(values, dtype=dtype)


def infer_inputs(request: kpb.ModelInferRequest, caps: Capabilities, name: str, limits: Limits) -> SeedRows:
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
    seeds = check_seeds(arrays[SEED], limits.max_seeds)
    n = len(seeds)
    check_response(n, (caps.resolution, caps.resolution, caps.channels), 0, limits, streamed=False)
    for tensor_name in (PSI, LABEL):  # not `name`: that is the model's, for the messages below
        if tensor_name in arrays and len(arrays[tensor_name]) != n:
            raise InvalidRequestError(
                f"input {tensor_name} has {len(arrays[tensor_name])} values for {n} seeds"
            )
    psi_in = arrays.get(PSI)
    psi = check_psi(caps, None if psi_in is None else psi_in.tolist(), n, name)
    labels = check_labels(caps, arrays[LABEL].tolist() if LABEL in arrays else [], n, name)
    return SeedRows(seeds, psi, labels)
