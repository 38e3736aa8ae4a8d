"""The HTTP side of the server (aiohttp, on the gRPC server's event loop and port of its own).

Routes: KServe v2 REST under /v2 (serving.web_kserve), image URLs under /v1 (serving.web_images)
and the curation studio at /studio (static files shipped in the package). One middleware does
what the gRPC interceptors do: the bearer token (header, or the `artctl_token` cookie the studio
sets, since an <img> cannot send headers), the error mapping (the same errors as gRPC, as 4xx JSON
with a message; a bug is a 500 with one log line) and the counting.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import time
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import Counter, Histogram

from serving.config import ServerOptions
from serving.errors import message_for, status_for
from serving.metrics import LATENCY_BUCKETS, ServerMetrics
from serving.web_images import Handler

log = logging.getLogger("artctl.serving")
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
}
OPEN_PATHS = ("/v2/health/",)  # probes carry no token
TOKEN_COOKIE = "artctl_token"
STUDIO = Path(str(resources.files("serving").joinpath("studio")))


def _route_label(request: web.Request) -> str:
    """The route's pattern (never the raw path, so URLs do not become series of their own)."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


class HttpFront:
    """The aiohttp application and its site; start() binds and returns the port."""

    def __init__(self, options: ServerOptions, metrics: ServerMetrics, routes: list[web.RouteDef]) -> None:
        self.options = options
        self.token = None
        if options.auth_token_file is not None:
            from serving.auth import read_token

            self.token = read_token(options.auth_token_file)
        r = metrics.registry
        self.requests = Counter(
            "artctl_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.duration = Histogram(
            "artctl_http_request_duration_seconds",
            "HTTP request time by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.app = web.Application(
            middlewares=[self._middleware], client_max_size=options.max_message_mb * 2**20
        )
        self.app.add_routes(routes)
        self.app.add_routes(
            [
                web.get("/", self._to_studio),
                web.get("/studio", self._studio),
                web.static("/studio/static", STUDIO),
            ]
        )
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None or request.path.startswith(OPEN_PATHS):
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route_label(request)
        try:
            if not self._authorised(request):
                response: web.StreamResponse = _error(
                    401, "missing or invalid bearer token (Authorization: Bearer <token>)"
                )
            else:
                response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own: 404 for unknown paths, 405, 413
            response = _error(exc.status, exc.reason or "error")
        except Exception as exc:
            code = status_for(exc)
            if code is None:
                log.error("HTTP %s %s failed", request.method, route, exc_info=exc)
                response = _error(500, f"internal error: {type(exc).__name__}")
            else:
                response = _error(HTTP_STATUS.get(code, 400), message_for(exc))
        self.requests.labels(route, str(response.status)).inc()
        self.duration.labels(route).observe(time.perf_counter() - started)
        return response

    async def _to_studio(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/studio")

    async def _studio(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STUDIO / "index.html", headers={"Cache-Control": "no-cache"})

    async def start(self) -> int:
        opts = self.options
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, opts.host, opts.http_port or 0, ssl_context=_ssl(opts), reuse_port=False
        )
        await site.start()
        server: Any = site._server  # aiohttp keeps the asyncio server here; the port it bound is on it
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ssl(opts: ServerOptions) -> ssl.SSLContext | None:
    """The gRPC server's certificate, and its client CA for mTLS."""
    if opts.tls_cert is None or opts.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(opts.tls_cert), str(opts.tls_key))
    if opts.tls_client_ca is not None:
        context.load_verify_locations(str(opts.tls_client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
