"""Assemble and run the gRPC server: models, batchers, services, health, reflection, metrics.

Models are loaded from files or folders; a file that fails to load (corrupt, SHA-256 not matching
its sidecar, no model card) is refused with a log line while the others serve. On SIGHUP, or when a
watched file changes, changed models are loaded and warmed in the background and swapped in; the
old batcher finishes what it already admitted, so no request is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from artctl.kserve.v2 import grpc_service_pb2, grpc_service_pb2_grpc
from artctl.modelcard import file_sha256
from artctl.v1 import generator_pb2, generator_pb2_grpc
from serving.auth import BearerTokenInterceptor, read_token
from serving.base import ServiceContext
from serving.batcher import DynamicBatcher
from serving.config import ServerOptions
from serving.generator_service import GeneratorServicer
from serving.kserve_service import InferenceServicer
from serving.metrics import ServerMetrics
from serving.registry import ModelRegistry, ServedModel
from serving.runtime import ModelLoadError, ModelRuntime, load_model
from serving.style_serving import StyleModel, StyleServing, synthesis_render
from serving.styles import NoStyleGraphsError, load_style_graphs

log = logging.getLogger("artctl.serving")

EMBEDDED_DEFAULT = Path(__file__).resolve().parent.parent / "artctl" / "models" / "default.onnx"
SERVICE_NAMES = (
    generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
    grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)

__all__ = ["EMBEDDED_DEFAULT", "ArtServer", "ServerOptions", "discover_models", "serve_forever"]


# Companion graphs the exporter writes beside StyleGAN-type models; they are not served directly.
COMPANION_SUFFIXES = (".mapping.onnx", ".synthesis.onnx")


def discover_models(paths: list[Path]) -> list[Path]:
    """Model files from the arguments (files, or folders of *.onnx); the embedded default when none."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(f for f in p.glob("*.onnx") if not f.name.endswith(COMPANION_SUFFIXES))
        else:
            found.append(p)
    if not paths:
        if not EMBEDDED_DEFAULT.is_file():
            raise ModelLoadError(
                "no model given and this install has no embedded default model; pass MODEL.onnx "
                "(make one with `artctl train` and `artctl export`)"
            )
        found.append(EMBEDDED_DEFAULT)
    return found


def _depth(batcher: DynamicBatcher) -> float:
    return float(batcher.queue_depth)


def _file_state(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    state = {}
    for p in discover_models(paths):
        with contextlib.suppress(OSError):
            st = p.stat()
            state[p] = (st.st_mtime_ns, st.st_size)
    return state


class ArtServer:
    """One server instance; start() binds and returns the port (pass port 0 for a free one)."""

    def __init__(self, options: ServerOptions) -> None:
        options.validate()
        self.options = options
        self.metrics = ServerMetrics()
        self.registry = ModelRegistry()
        self.styles = StyleServing()
        workers = options.encode_workers or max(2, os.cpu_count() or 2)
        self.encode_pool: Executor
        if options.encode_pool == "process":
            # spawn, not fork: forking a process that already runs gRPC threads is unsafe.
            ctx = multiprocessing.get_context("spawn")
            self.encode_pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        else:
            self.encode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="artctl-encode")
        self.infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artctl-infer")
        self.load_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artctl-load")
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.inference: InferenceServicer | None = None
        self.port = 0
        self._paths: dict[str, Path] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop start() ran on
        self._metrics_http: Any = None  # (server, thread) from prometheus_client

    # -- models -------------------------------------------------------------------------------------

    def _load_runtime(self, path: Path) -> ModelRuntime:
        """Load and warm a model (blocking; runs in the load pool)."""
        opts = self.options
        runtime = load_model(
            path, name=path.stem, provider=opts.provider, threads=opts.threads, exec_batch=opts.exec_batch
        )
        runtime.render(np.zeros(1, dtype=np.uint64))  # warm-up: first-run allocations, kernel choice
        if "mapping_file" in runtime.card.extra and "synthesis_file" in runtime.card.extra:
            try:  # companions are optional: the model still serves Generate without them
                runtime.styles = load_style_graphs(runtime)
            except NoStyleGraphsError as exc:
                log.error("model %s: not serving Mix/Interpolate: %s", runtime.name, exc)
        return runtime

    def _batcher(self, render: Any, on_batch: Any) -> DynamicBatcher:
        """A started batcher with the server's limits, on the shared inference thread."""
        opts = self.options
        batcher = DynamicBatcher(
            render,
            self.infer_pool,
            max_batch=opts.max_batch,
            max_delay_s=opts.max_delay_ms / 1000.0,
            queue_size=opts.queue_size,
            on_batch=on_batch,
        )
        batcher.start()
        return batcher

    def _observer(self, label: str) -> Any:
        """Per-batch metrics (batch size, inference time, each request's queue wait) for `label`."""

        def on_batch(size: int, seconds: float, waits: list[float]) -> None:
            self.metrics.batch_size.labels(label).observe(size)
            self.metrics.inference_duration.labels(label).observe(seconds)
            for wait in waits:
                self.metrics.queue_wait.labels(label).observe(wait)

        return on_batch

    def _serve_runtime(self, runtime: ModelRuntime) -> ServedModel:
        name = runtime.name
        batcher = self._batcher(runtime.render, self._observer(name))
        self.metrics.model_info.labels(name, runtime.sha256, runtime.profile.provider).set(1)
        self.metrics.queue_depth.labels(name).set_function(partial(_depth, batcher))
        if runtime.styles is not None:
            self._serve_styles(runtime)
        return ServedModel(runtime=runtime, batcher=batcher)

    def _serve_styles(self, runtime: ModelRuntime) -> None:
        """A synthesis-graph batcher of the model's own, for Mix and Interpolate."""
        assert runtime.styles is not None
        batcher = self._batcher(synthesis_render(runtime.styles), self._observer(f"{runtime.name}.synthesis"))
        self.styles.add(runtime, StyleModel(runtime.styles, batcher, self.infer_pool))

    async def _load_all(self) -> None:
        """Load every model; refuse the broken ones (logged) unless none loads, which is fatal."""
        loop = asyncio.get_running_loop()
        refused: list[str] = []
        for path in discover_models(self.options.models):
            try:
                runtime = await loop.run_in_executor(self.load_pool, self._load_runtime, path)
            except ModelLoadError as exc:
                refused.append(str(exc))
                continue
            if runtime.name in self._paths:
                refused.append(f"{path}: the name {runtime.name!r} is taken by {self._paths[runtime.name]}")
                continue
            self.registry.add(self._serve_runtime(runtime))
            self._paths[runtime.name] = path
        if not len(self.registry):
            raise ModelLoadError("; ".join(refused) or "no model to serve")
        for reason in refused:
            log.error("refusing model: %s", reason)

    def _retire(self, old: ServedModel) -> None:
        """Let an old batcher finish what it admitted, in the background."""
        self.metrics.model_info.remove(old.name, old.runtime.sha256, old.runtime.profile.provider)
        task = asyncio.get_running_loop().create_task(old.batcher.close())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)
        style = self.styles.remove(old.runtime)
        if style is not None:
            style_task = asyncio.get_running_loop().create_task(style.batcher.close())
            self._draining.add(style_task)
            style_task.add_done_callback(self._draining.discard)

    async def reload(self) -> list[str]:
        """Pick up new, changed and removed model files; returns a line per change."""
        changes: list[str] = []
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            wanted = {p.stem: p for p in discover_models(self.options.models)}
            for name in [n for n in self.registry.names() if n not in wanted]:
                old = self.registry.remove(name)
                self._paths.pop(name, None)
                if old:
                    self._retire(old)
                changes.append(f"removed {name}")
            for name, path in wanted.items():
                try:
                    sha = await loop.run_in_executor(self.load_pool, file_sha256, path)
                except OSError as exc:
                    log.error("reload: cannot read %s: %s", path, exc)
                    continue
                current = self.registry.names()
                if name in current and self.registry.get(name).runtime.sha256 == sha:
                    continue
                try:
                    runtime = await loop.run_in_executor(self.load_pool, self._load_runtime, path)
                except ModelLoadError as exc:
                    log.error("reload: refusing %s, keeping what is served: %s", path, exc)
                    continue
                old = self.registry.replace(self._serve_runtime(runtime))
                self._paths[name] = path
                if old is not None:
                    self._retire(old)
                changes.append(f"{'reloaded' if old else 'added'} {name} ({runtime.sha256[:12]})")
        for line in changes:
            log.info("reload: %s", line)
        return changes

    async def _watch(self) -> None:
        interval = self.options.watch_interval_s
        state = _file_state(self.options.models)
        while True:
            await asyncio.sleep(interval)
            try:
                now = _file_state(self.options.models)
            except ModelLoadError:
                continue
            if now != state:
                state = now
                await self.reload()

    # -- lifecycle ----------------------------------------------------------------------------------

    def _credentials(self) -> grpc.ServerCredentials | None:
        opts = self.options
        if opts.tls_cert is None or opts.tls_key is None:
            return None
        client_ca = Path(opts.tls_client_ca).read_bytes() if opts.tls_client_ca else None
        return grpc.ssl_server_credentials(
            [(Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    async def start(self) -> int:
        opts = self.options
        self.loop = asyncio.get_running_loop()
        interceptors = []
        if opts.auth_token_file is not None:
            interceptors.append(BearerTokenInterceptor(read_token(opts.auth_token_file)))
        credentials = self._credentials()
        await self._load_all()
        limit = opts.max_message_mb * 1024 * 1024
        grpc_options: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
        if opts.max_connection_age_s:
            grpc_options += [
                ("grpc.max_connection_age_ms", int(opts.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(opts.grace_s * 1000)),
            ]
        self.server = grpc.aio.server(options=grpc_options, interceptors=interceptors)
        ctx = ServiceContext(self.registry, self.encode_pool, self.metrics, opts.max_seeds_per_request)
        generator_pb2_grpc.add_GeneratorServicer_to_server(GeneratorServicer(ctx, self.styles), self.server)
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
        address = f"{opts.host}:{opts.port}"
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot bind {address}")
        if opts.metrics_port is not None:
            self._metrics_http = start_http_server(
                opts.metrics_port, addr=opts.host, registry=self.metrics.registry
            )
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if opts.watch_interval_s > 0:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch(), name="artctl-watch")
        return self.port

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, stop admitting new RPCs, finish in-flight ones, then stop."""
        await self.health.enter_graceful_shutdown()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        if self.inference is not None:
            self.inference.ready = False
        if self.server is not None:
            await self.server.stop(self.options.grace_s)
        for model in self.registry:
            await model.batcher.close()
        for style in self.styles:
            await style.batcher.close()
        if self._draining:
            await asyncio.gather(*self._draining)
        for pool in (self.encode_pool, self.infer_pool, self.load_pool):
            pool.shutdown(wait=True)
        if self._metrics_http is not None:
            http_server, _ = self._metrics_http
            http_server.shutdown()
            http_server.server_close()


async def serve_forever(options: ServerOptions) -> None:
    """Run until SIGTERM or SIGINT (graceful stop); SIGHUP reloads the models."""
    server = ArtServer(options)
    port = await server.start()
    names = ", ".join(m.name for m in server.registry)
    scheme = "TLS" if options.tls_cert else "plaintext"
    log.info(
        "artctl serve: listening on %s:%d (%s; models: %s; default: %s)",
        options.host,
        port,
        scheme,
        names,
        server.registry.default_name,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        task = loop.create_task(server.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    log.info("artctl serve: shutting down (finishing in-flight requests)")
    await server.stop()
    log.info("artctl serve: stopped")
