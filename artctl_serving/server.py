"""Assemble and run the gRPC server: services, interceptors, health, reflection, metrics, lifecycle.

The models themselves (loading, batchers, reload) are artctl_serving.hosting's; this module binds the
port, wires the services to them, and stops gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from artctl.kserve.v2 import grpc_service_pb2, grpc_service_pb2_grpc
from artctl.v1 import generator_pb2, generator_pb2_grpc
from artctl_serving.auth import BearerTokenInterceptor, read_token
from artctl_serving.cache import ImageCache
from artctl_serving.config import ServerOptions
from artctl_serving.generator_service import GeneratorServicer
from artctl_serving.hosting import ModelHost
from artctl_serving.interceptors import StatusInterceptor
from artctl_serving.kserve_service import Batching, InferenceServicer
from artctl_serving.metrics import ServerMetrics
from artctl_serving.metrics_port import start_metrics
from artctl_serving.pipeline import Encoded, Pipeline
from artctl_serving.requests import Limits

log = logging.getLogger("artctl.serving")

SERVICE_NAMES = (
    generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
    grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)

__all__ = ["ArtServer", "ServerOptions", "serve_forever"]


def _encode_pool(options: ServerOptions) -> Executor:
    workers = options.encode_workers or max(2, os.cpu_count() or 2)
    if options.encode_pool == "process":
        # spawn, not fork: forking a process that already runs gRPC threads is unsafe.
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="artctl-encode")


def _check_port_free(host: str, port: int, purpose: str = "gRPC", flag: str = "--port") -> None:
    """Refuse a port another process listens on (gRPC alone would share it, see _grpc_options),
    naming what it was for and the flag that chooses another."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError:
                raise OSError(
                    f"cannot listen on {host}:{port} for {purpose}: the port is in use; choose another {flag}"
                ) from None


def _credentials(options: ServerOptions) -> grpc.ServerCredentials | None:
    if options.tls_cert is None or options.tls_key is None:
        return None
    client_ca = Path(options.tls_client_ca).read_bytes() if options.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(Path(options.tls_key).read_bytes(), Path(options.tls_cert).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class ClosingHealthServicer(health.aio.HealthServicer):
    """Health checks whose Watch streams end once the server shuts down (after they were sent
    NOT_SERVING), so an open watcher never holds a stop up for the whole grace period."""

    WATCHER_FLUSH_S = 0.05  # time for watchers to write NOT_SERVING before their streams end

    def __init__(self) -> None:
        super().__init__()
        self._closing = asyncio.Event()

    async def Watch(self, request: Any, context: Any) -> None:
        watch = asyncio.ensure_future(super().Watch(request, context))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({watch, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, closing):
                task.cancel()
        if watch.done() and not watch.cancelled() and watch.exception() is not None:
            raise watch.exception()  # type: ignore[misc]

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        await asyncio.sleep(self.WATCHER_FLUSH_S)
        self._closing.set()


class ArtServer:
    """One server instance; start() binds and returns the port (pass port 0 for a free one)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.metrics = ServerMetrics()
        self.host = ModelHost(options, self.metrics)
        self.registry = self.host.registry
        self.encode_pool = _encode_pool(options)
        self.cache: ImageCache[Encoded] = ImageCache(options.cache_mb * 2**20, self.metrics.registry)
        self.pipeline = Pipeline(self.encode_pool, self.metrics, self.cache)
        self.health = ClosingHealthServicer()
        self.server: grpc.aio.Server | None = None
        self.inference: InferenceServicer | None = None
        self.generator: GeneratorServicer | None = None
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop start() ran on
        self._metrics_http: Any = None  # artctl_serving.metrics_port's server
        self.http: Any = None  # artctl_serving.web.HttpFront, when http_port is set
        self.http_port = 0

    async def reload(self) -> list[str]:
        """Pick up new, changed and removed model files; returns a line per change."""
        return await self.host.reload()

    def _grpc_options(self) -> list[tuple[str, int]]:
        opts = self.options
        limit = opts.max_message_mb * 1024 * 1024
        grpc_options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # gRPC shares a port with any other process by default (SO_REUSEPORT): a second server, or
            # an old one with an old model, would silently take part of the traffic.
            ("grpc.so_reuseport", 0),
        ]
        if opts.max_connection_age_s:
            grpc_options += [
                ("grpc.max_connection_age_ms", int(opts.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(opts.grace_s * 1000)),
            ]
        return grpc_options

    def _add_services(self, server: grpc.aio.Server) -> None:
        opts = self.options
        limits = Limits(opts.max_seeds_per_request, opts.max_message_mb * 1024 * 1024)
        self.generator = GeneratorServicer(self.registry, self.pipeline, limits)
        generator_pb2_grpc.add_GeneratorServicer_to_server(self.generator, server)
        batching = Batching(opts.max_batch, opts.max_delay_ms, gpu=self.host.engine.kind == "cuda")
        self.inference = InferenceServicer(self.registry, self.pipeline, limits, batching)
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.inference, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )

    async def start(self) -> int:
        opts = self.options
        self.loop = asyncio.get_running_loop()
        interceptors: list[grpc.aio.ServerInterceptor] = [
            StatusInterceptor(self.metrics, SERVICE_NAMES, self.registry.resolve)
        ]
        if opts.auth_token_file is not None:
            interceptors.append(BearerTokenInterceptor(read_token(opts.auth_token_file)))
        opts.check_files()
        for port, purpose, flag in (  # before minutes of model loading
            (opts.port, "gRPC", "--port"),
            (opts.http_port, "HTTP", "--http-port"),
            (opts.metrics_port, "/metrics", "--metrics-port"),
        ):
            _check_port_free(opts.host, port or 0, purpose, flag)
        credentials = _credentials(opts)
        try:
            await self._start(opts, interceptors, credentials)
        except BaseException:
            await self.stop()  # nothing left running for a closed event loop to trip over
            raise
        return self.port

    async def _start(
        self,
        opts: ServerOptions,
        interceptors: list[grpc.aio.ServerInterceptor],
        credentials: grpc.ServerCredentials | None,
    ) -> None:
        await self.host.load_all()
        self.server = grpc.aio.server(options=self._grpc_options(), interceptors=interceptors)
        self._add_services(self.server)
        address = f"{opts.host}:{opts.port}"
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise OSError(
                f"cannot listen on {address}: the port is in use or the address is not this machine's"
            )
        if opts.metrics_port is not None:
            token = read_token(opts.auth_token_file) if opts.metrics_auth and opts.auth_token_file else None
            try:
                self._metrics_http = start_metrics(opts.host, opts.metrics_port, self.metrics.registry, token)
            except OSError as exc:
                raise OSError(
                    f"cannot listen on {opts.host}:{opts.metrics_port} for /metrics ({exc.strerror}); "
                    "choose another --metrics-port"
                ) from None
        await self.server.start()
        if opts.http_port is not None:
            await self._start_http()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.host.start_watching()

    async def _start_http(self) -> None:
        """The HTTP front (studio, KServe REST, image URLs) over the same registry, pipeline and cache."""
        from artctl_serving.web import HttpFront
        from artctl_serving.web_images import ImageRoutes
        from artctl_serving.web_kserve import KServeRoutes

        assert self.inference is not None and self.generator is not None
        from artctl_serving.web_conn import HttpLimits

        limits = HttpLimits.of(self.options)
        private = self.options.auth_token_file is not None
        from artctl_serving.web_collection import CollectionRoutes

        routes = KServeRoutes(self.inference, limits).routes() + ImageRoutes(self.generator, private).routes()
        routes += CollectionRoutes(self.registry, limits, self.options.collection).routes()
        self.http = HttpFront(self.options, self.metrics, routes)
        try:
            self.http_port = await self.http.start()
        except OSError as exc:
            raise OSError(
                f"cannot listen on {self.options.host}:{self.options.http_port} for HTTP ({exc.strerror})"
            ) from None

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, stop admitting new RPCs, finish in-flight ones, then stop."""
        await self.host.stop_watching()
        for model in self.registry:  # from the SIGTERM on, nothing new is admitted, by either protocol
            for batcher in model.batchers():
                batcher.stop_admitting()
        if self.inference is not None:
            self.inference.ready = False
        await self.health.enter_graceful_shutdown()
        stopping = []  # both protocols finish their in-flight requests within the one grace period
        if self.http is not None:
            stopping.append(self.http.stop())
        if self.server is not None:
            stopping.append(self.server.stop(self.options.grace_s))
        await asyncio.gather(*stopping)
        await self.host.close()
        self.encode_pool.shutdown(wait=True)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
            self._metrics_http = None


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
    if server.http is not None:
        web_scheme = "https" if options.tls_cert else "http"
        log.info("artctl serve: studio at %s://%s:%d/studio", web_scheme, options.host, server.http_port)
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
