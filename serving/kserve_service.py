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
from serving.errors import ModelNotFoundError
from serving.pipeline import Pipeline, deadline_of
from serving.registry import ModelRegistry, ServedModel
from serving.requests import IMAGE, LABEL, PSI, SEED, Limits, infer_inputs

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


def _check_version(name: str, version: str) -> None:
    """Every model has the one version "1" ("" means the latest, which is it)."""
    if version not in ("", MODEL_VERSION):
        raise ModelNotFoundError(f"model {name!r} has no version {version[:32]!r} (it has {MODEL_VERSION})")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: ModelRegistry, pipeline: Pipeline, limits: Limits) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.limits = limits
        self.ready = True

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready and len(self.registry) > 0)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        try:
            self.registry.get(request.name)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.ready and request.version in ("", MODEL_VERSION))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="artctl", version=__version__, extensions=[])

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        model = self.registry.get(request.name)
        _check_version(request.name, request.version)
        inputs, outputs = _signature(model)
        return pb.ModelMetadataResponse(
            name=request.name or model.name,
            versions=[MODEL_VERSION],
            platform=PLATFORM,
            inputs=inputs,
            outputs=outputs,
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        model = self.registry.get(request.model_name)
        _check_version(request.model_name, request.model_version)
        rows = infer_inputs(request, model.runtime.card, model.name, self.limits)
        images = await self.pipeline.render(model.name, model.batcher, rows.columns(), deadline_of(context))
        output = pb.ModelInferResponse.InferOutputTensor(
            name=IMAGE, datatype="UINT8", shape=[len(images), *model.runtime.image_shape]
        )
        return pb.ModelInferResponse(
            model_name=request.model_name or model.name,
            model_version=MODEL_VERSION,
            id=request.id,
            outputs=[output],
            raw_output_contents=[np.ascontiguousarray(images).tobytes()],
        )
