"""Assemble and run the gRPC server: models, batchers, services, health, reflection, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from artctl.kserve.v2 import grpc_service_pb2, grpc_service_pb2_grpc
from artctl.v1 import generator_pb2, generator_pb2_grpc
from serving.base import ServiceContext
from serving.batcher import DynamicBatcher
from serving.generator_service import GeneratorServicer
from serving.kserve_service import InferenceServicer
from serving.metrics import ServerMetrics
from serving.registry import ModelRegistry, ServedModel
from serving.runtime import ModelLoadError, load_model

log = logging.getLogger("artctl.serving")

EMBEDDED_DEFAULT = Path(__file__).resolve().parent.parent / "artctl" / "models" / "default.onnx"
SERVICE_NAMES = (
    generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
    grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int | None = None
    max_batch: int = 64
    max_delay_ms: float = 2.0
    queue_size: int = 4096
    max_seeds_per_request: int = 1024
    threads: int = 0
    provider: str = "cpu"
    encode_workers: int = 0
    max_message_mb: int = 64
    grace_s: float = 30.0
    models: list[Path] = field(default_factory=list)


def discover_models(paths: list[Path]) -> list[Path]:
    """Model files from the arguments (files, or folders of *.onnx); the embedded default when none."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(p.glob("*.onnx"))
        else:
            found.append(p)
    if not paths:
        if not EMBEDDED_DEFAULT.is_file():
            raise ModelLoadError(
                "no model given and this install has no embedded default model; pass MODEL.onnx "
                "(make one with `artctl train` and `artctl export`)"
            )
        found.append(EMBEDDED_DEFAULT)
    if not found:
        raise ModelLoadError(f"no .onnx files in {', '.join(map(str, paths))}")
    return found


def _depth(batcher: DynamicBatcher) -> float:
    return float(batcher.queue_depth)


class ArtServer:
    """One server instance; start() binds and returns the port (pass port 0 for a free one)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.metrics = ServerMetrics()
        self.registry = ModelRegistry()
        workers = options.encode_workers or max(2, os.cpu_count() or 2)
        self.encode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="artctl-encode")
        self.infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artctl-infer")
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.inference: InferenceServicer | None = None
        self.port = 0

    def _load(self) -> None:
        opts = self.options
        for path in discover_models(opts.models):
            runtime = load_model(path, name=Path(path).stem, provider=opts.provider, threads=opts.threads)
            name = runtime.name

            def on_batch(size: int, seconds: float, name: str = name) -> None:
                self.metrics.batch_size.labels(name).observe(size)
                self.metrics.inference_duration.labels(name).observe(seconds)

            batcher = DynamicBatcher(
                runtime.render,
                self.infer_pool,
                max_batch=opts.max_batch,
                max_delay_s=opts.max_delay_ms / 1000.0,
                queue_size=opts.queue_size,
                on_batch=on_batch,
            )
            self.registry.add(ServedModel(runtime=runtime, batcher=batcher))
            self.metrics.model_info.labels(name, runtime.sha256, runtime.profile.provider).set(1)
            self.metrics.queue_depth.labels(name).set_function(partial(_depth, batcher))

    async def start(self) -> int:
        opts = self.options
        self._load()
        for model in self.registry:
            model.batcher.start()
        limit = opts.max_message_mb * 1024 * 1024
        self.server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        )
        ctx = ServiceContext(self.registry, self.encode_pool, self.metrics, opts.max_seeds_per_request)
        generator_pb2_grpc.add_GeneratorServicer_to_server(GeneratorServicer(ctx), self.server)
        self.inference = InferenceServicer(ctx)
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.inference, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.port = self.server.add_insecure_port(f"{opts.host}:{opts.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {opts.host}:{opts.port}")
        if opts.metrics_port is not None:
            start_http_server(opts.metrics_port, addr=opts.host, registry=self.metrics.registry)
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, stop admitting new RPCs, finish in-flight ones, then stop."""
        await self.health.enter_graceful_shutdown()
        if self.inference is not None:
            self.inference.ready = False
        if self.server is not None:
            await self.server.stop(self.options.grace_s)
        for model in self.registry:
            await model.batcher.close()
        self.encode_pool.shutdown(wait=True)
        self.infer_pool.shutdown(wait=True)


async def serve_forever(options: ServerOptions) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = ArtServer(options)
    port = await server.start()
    names = ", ".join(m.name for m in server.registry)
    log.info(
        "artctl serve: listening on %s:%d (models: %s; default: %s)",
        options.host,
        port,
        names,
        server.registry.default_name,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("artctl serve: shutting down (finishing in-flight requests)")
    await server.stop()
    log.info("artctl serve: stopped")
