"""inference.GRPCInferenceService: the KServe v2 / Triton protocol over the same batched models.

Signature of every model: SEED UINT64 [-1] (required), TRUNCATION_PSI FP32 [-1] and LABEL INT64 [-1]
(when the model has them) -> IMAGE UINT8 [-1, H, W, C], returned in raw_output_contents as
tritonclient expects. Triton's extensions that its tools call are served too: ModelConfig (Triton's
convention: dims without the batch dimension, max_batch_size the per-request limit),
ModelStatistics (counts and times per model), RepositoryIndex and ModelStreamInfer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from artctl import __version__
from artctl.kserve.v2 import grpc_service_pb2 as pb
from artctl.kserve.v2 import grpc_service_pb2_grpc as pb_grpc
from artctl.kserve.v2 import model_config_pb2 as mc
from artctl_serving.errors import ModelNotFoundError, message_for, status_for
from artctl_serving.pipeline import Pipeline, deadline_of
from artctl_serving.registry import ModelRegistry, ServedModel
from artctl_serving.requests import IMAGE, LABEL, PSI, SEED, Limits, infer_inputs

PLATFORM = "onnxruntime_onnx"
MODEL_VERSION = "1"
TENSORS = {SEED: mc.TYPE_UINT64, PSI: mc.TYPE_FP32, LABEL: mc.TYPE_INT64}


@dataclass(frozen=True)
class Batching:
    """The batcher's settings, as ModelConfig reports them."""

    max_batch: int = 64
    max_delay_ms: float = 2.0
    gpu: bool = False


def _signature(model: ServedModel) -> tuple[list[pb.ModelMetadataResponse.TensorMetadata], list[Any]]:
    card = model.runtime.card
    meta = pb.ModelMetadataResponse.TensorMetadata
    inputs = [meta(name=SEED, datatype="UINT64", shape=[-1, 1])]
    if card.has_psi:
        inputs.append(meta(name=PSI, datatype="FP32", shape=[-1, 1]))
    if card.has_label:
        inputs.append(meta(name=LABEL, datatype="INT64", shape=[-1, 1]))
    h, w, c = model.runtime.image_shape
    outputs = [meta(name=IMAGE, datatype="UINT8", shape=[-1, h, w, c])]
    return inputs, outputs


def _check_version(name: str, version: str) -> None:
    """Every model has the one version "1" ("" means the latest, which is it)."""
    if version not in ("", MODEL_VERSION):
        raise ModelNotFoundError(f"model {name!r} has no version {version[:32]!r} (it has {MODEL_VERSION})")


def _config(model: ServedModel, limits: Limits, batching: Batching) -> mc.ModelConfig:
    card = model.runtime.card
    optional = {PSI: not card.has_psi, LABEL: not card.has_label}
    inputs = [mc.ModelInput(name=SEED, data_type=mc.TYPE_UINT64, dims=[1])]
    for name, absent in optional.items():
        if not absent:
            inputs.append(mc.ModelInput(name=name, data_type=TENSORS[name], dims=[1], optional=True))
    kind = mc.ModelInstanceGroup.KIND_GPU if batching.gpu else mc.ModelInstanceGroup.KIND_CPU
    profile = model.runtime.profile
    return mc.ModelConfig(
        name=model.name,
        platform=PLATFORM,
        backend="onnxruntime",
        max_batch_size=limits.max_seeds,
        input=inputs,
        output=[mc.ModelOutput(name=IMAGE, data_type=mc.TYPE_UINT8, dims=list(model.runtime.image_shape))],
        instance_group=[mc.ModelInstanceGroup(name=model.name, count=1, kind=kind)],
        dynamic_batching=mc.ModelDynamicBatching(
            preferred_batch_size=[batching.max_batch],
            max_queue_delay_microseconds=int(batching.max_delay_ms * 1000),
        ),
        parameters={
            "artctl_model_sha256": mc.ModelParameter(string_value=model.runtime.sha256),
            "artctl_graph_optimization": mc.ModelParameter(string_value=profile.graph_optimization),
            "artctl_provider": mc.ModelParameter(string_value=profile.provider),
        },
    )


def _statistics(model: ServedModel) -> pb.ModelStatistics:
    t = model.tally
    d = pb.StatisticDuration
    return pb.ModelStatistics(
        name=model.name,
        version=MODEL_VERSION,
        last_inference=t.last_inference_ms,
        inference_count=t.images,
        execution_count=t.executions,
        inference_stats=pb.InferStatistics(
            success=d(count=t.success, ns=t.success_ns),
            fail=d(count=t.fail, ns=t.fail_ns),
            queue=d(count=t.queue, ns=t.queue_ns),
            # Triton's tools (perf_analyzer) require the three compute counts to agree; the
            # model call's time is all in compute_infer.
            compute_input=d(count=t.executions, ns=0),
            compute_infer=d(count=t.executions, ns=t.compute_ns),
            compute_output=d(count=t.executions, ns=0),
        ),
        batch_stats=[
            pb.InferBatchStatistics(batch_size=size, compute_infer=d(count=count, ns=ns))
            for size, (count, ns) in sorted(t.batch_sizes.items())
        ],
    )


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self, registry: ModelRegistry, pipeline: Pipeline, limits: Limits, batching: Batching | None = None
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.limits = limits
        self.batching = batching or Batching()
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
        return pb.ServerMetadataResponse(
            name="artctl", version=__version__, extensions=["model_configuration", "statistics"]
        )

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
        return await self.infer(request, deadline_of(context))

    async def infer(self, request: pb.ModelInferRequest, deadline: float | None) -> pb.ModelInferResponse:
        """One inference, whichever protocol brought it (gRPC, its stream, REST)."""
        model = self.registry.get(request.model_name)
        _check_version(request.model_name, request.model_version)
        with model.tally.timed():
            rows = infer_inputs(request, model.runtime.caps, model.name, self.limits)
            images = await self.pipeline.render(model.name, model.from_seeds(rows), deadline)
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

    # -- Triton extensions ----------------------------------------------------------------------------

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One response per request, in order; a request that fails gets its error in error_message
        and the stream goes on (as Triton's clients expect)."""
        async for request in request_iterator:
            try:
                reply = await self.infer(request, deadline_of(context))
            except Exception as exc:
                if status_for(exc) is None:
                    raise  # a bug: the interceptor makes it INTERNAL
                yield pb.ModelStreamInferResponse(error_message=message_for(exc))
                continue
            yield pb.ModelStreamInferResponse(infer_response=reply)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        model = self.registry.get(request.name)
        _check_version(request.name, request.version)
        return pb.ModelConfigResponse(config=_config(model, self.limits, self.batching))

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        models = [self.registry.get(request.name)] if request.name else list(self.registry)
        if request.name:
            _check_version(request.name, request.version)
        return pb.ModelStatisticsResponse(model_stats=[_statistics(m) for m in models])

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[index(name=m.name, version=MODEL_VERSION, state="READY") for m in self.registry]
        )
