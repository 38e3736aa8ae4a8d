"""inference.GRPCInferenceService: the KServe v2 / Triton protocol over the same batched models.

Signature of every model: SEED UINT64 [-1] (required), TRUNCATION_PSI FP32 [-1] and LABEL INT64 [-1]
(when the model has them) -> IMAGE UINT8 [-1, H, W, C], returned in raw_output_contents as
tritonclient expects.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from artctl import __version__
from artctl.kserve.v2 import grpc_service_pb2 as pb
from artctl.kserve.v2 import grpc_service_pb2_grpc as pb_grpc
from serving.base import ServicerBase
from serving.registry import ModelNotFoundError, ServedModel
from serving.validation import InvalidRequestError, check_labels, check_psi, check_seeds

SEED, PSI, LABEL, IMAGE = "SEED", "TRUNCATION_PSI", "LABEL", "IMAGE"
# input name -> (v2 datatype, little-endian numpy dtype, InferTensorContents field)
DTYPES: dict[str, tuple[str, np.dtype[Any], str]] = {
    SEED: ("UINT64", np.dtype("<u8"), "uint64_contents"),
    PSI: ("FP32", np.dtype("<f4"), "fp32_contents"),
    LABEL: ("INT64", np.dtype("<i8"), "int64_contents"),
}
PLATFORM = "onnxruntime_onnx"
MODEL_VERSION = "1"


def _signature(model: ServedModel) -> tuple[list[pb.ModelMetadataResponse.TensorMetadata], list[Any]]:
    card = model.runtime.card
    meta = pb.ModelMetadataResponse.TensorMetadata
    inputs = [meta(name=SEED, datatype="UINT64", shape=[-1])]
    if card.has_psi:
        inputs.append(meta(name=PSI, datatype="FP32", shape=[-1]))
    if card.has_label:
        inputs.append(meta(name=LABEL, datatype="INT64", shape=[-1]))
    h, w, c = model.runtime.image_shape
    outputs = [meta(name=IMAGE, datatype="UINT8", shape=[-1, h, w, c])]
    return inputs, outputs


def _read_input(request: pb.ModelInferRequest, index: int) -> np.ndarray:
    tensor = request.inputs[index]
    if tensor.name not in DTYPES:
        raise InvalidRequestError(f"unexpected input {tensor.name!r}; inputs are {', '.join(DTYPES)}")
    datatype, dtype, field = DTYPES[tensor.name]
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


class InferenceServicer(ServicerBase, pb_grpc.GRPCInferenceServiceServicer):
    ready = True

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready and len(self.ctx.registry) > 0)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        try:
            self.ctx.registry.get(request.name)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="artctl", version=__version__, extensions=[])

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        async def body() -> pb.ModelMetadataResponse:
            model = self.ctx.registry.get(request.name)
            inputs, outputs = _signature(model)
            return pb.ModelMetadataResponse(
                name=request.name or model.name,
                versions=[MODEL_VERSION],
                platform=PLATFORM,
                inputs=inputs,
                outputs=outputs,
            )

        return await self.guarded("ModelMetadata", request.name, context, body)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        async def body() -> pb.ModelInferResponse:
            model = self.ctx.registry.get(request.model_name)
            if request.model_version not in ("", MODEL_VERSION):
                raise ModelNotFoundError(
                    f"model {request.model_name!r} has no version {request.model_version!r}"
                )
            arrays: dict[str, np.ndarray] = {}
            for i, tensor in enumerate(request.inputs):
                if tensor.name in arrays:
                    raise InvalidRequestError(f"input {tensor.name} given twice")
                arrays[tensor.name] = _read_input(request, i)
            if SEED not in arrays:
                raise InvalidRequestError(f"input {SEED} (UINT64 [N]) is required")
            for out in request.outputs:
                if out.name != IMAGE:
                    raise InvalidRequestError(f"unknown output {out.name!r}; the model's output is {IMAGE}")
            card = model.runtime.card
            seeds = check_seeds(arrays[SEED], self.ctx.max_seeds_per_request)
            n = len(seeds)
            for name in (PSI, LABEL):
                if name in arrays and len(arrays[name]) != n:
                    raise InvalidRequestError(f"input {name} has {len(arrays[name])} values for {n} seeds")
            psi_in = arrays.get(PSI)
            psi = check_psi(card, None if psi_in is None else psi_in.tolist(), n)
            labels = check_labels(card, arrays[LABEL].tolist() if LABEL in arrays else [], n)
            images = await self.render(model, seeds, psi, labels, context)
            h, w, c = model.runtime.image_shape
            output = pb.ModelInferResponse.InferOutputTensor(name=IMAGE, datatype="UINT8", shape=[n, h, w, c])
            return pb.ModelInferResponse(
                model_name=request.model_name or model.name,
                model_version=MODEL_VERSION,
                id=request.id,
                outputs=[output],
                raw_output_contents=[np.ascontiguousarray(images).tobytes()],
            )

        return await self.guarded("ModelInfer", request.model_name, context, body)
