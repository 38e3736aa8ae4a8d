"""The HTTP side of the server (aiohttp, on the gRPC server's event loop and port of its own).

Routes: KServe v2 REST under /v2 (artctl_serving.web_kserve), image URLs under /v1 (artctl_serving.web_images)
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
from urllib.parse import unquote

import grpc
from aiohttp import web
from prometheus_client import Counter, Histogram

from artctl_serving.config import ServerOptions
from artctl_serving.errors import message_for, status_for
from artctl_serving.metrics import LATENCY_BUCKETS, ServerMetrics
from artctl_serving.web_conn import BODY_REFUSED, GuardedSite, HttpError, HttpLimits, json_error, too_large
from artctl_serving.web_images import Handler

log = logging.getLogger("artctl.serving")
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
}
OPEN_PATHS = ("/v2/health/", "/studio/static/")  # probes carry no token; the studio's files hold no secret
OPEN_EXACT = ("/", "/studio")  # the page that asks for the token must load without it
TOKEN_COOKIE = "artctl_token"
STUDIO = Path(str(resources.files("artctl_serving").joinpath("studio")))


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
            from artctl_serving.auth import read_token

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
        self.limits = HttpLimits.of(options)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=self.limits.body_bytes)
        routes = [*routes, web.get("/", self._to_studio), web.get("/studio", self._studio)]
        self.app.add_routes(
            [
                web.RouteDef(r.method, r.path, r.handler, {**r.kwargs, "expect_handler": self._expect})
                for r in routes
            ]
        )
        self.app.add_routes([web.static("/studio/static", STUDIO)])
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None or request.path.startswith(OPEN_PATHS) or request.path in OPEN_EXACT:
            return True
        expected = self.token.encode()
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return hmac.compare_digest(_bytes(header[7:]), expected)
        try:
            cookie = request.cookies.get(TOKEN_COOKIE, "")
        except Exception:  # an unparsable Cookie header is no token
            return False
        # The studio stores the token URI-encoded (a cookie may not hold every character); a
        # cookie set by hand holds it as it is.
        return any(hmac.compare_digest(_bytes(given), expected) for given in (cookie, unquote(cookie)))

    def _refusal(self, request: web.Request) -> web.Response | None:
        """What is refused before a byte of the body is read: no token, too big, too many headers."""
        if not self._authorised(request):
            return json_error(401, "missing or invalid bearer token (Authorization: Bearer <token>)")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        if header_bytes > self.limits.header_bytes:
            return json_error(
                431,
                f"the headers are over the {self.limits.header_bytes // 1024} KiB limit "
                "(--http-max-header-kb)",
            )
        length = request.content_length
        if length is not None and length > self.limits.body_bytes:
            return json_error(413, too_large(self.limits))
        return None

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue`: the refusal instead of "100 Continue" when there is one, so a client
        never sends a body that would be refused."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return json_error(417, "the only expectation served is 100-continue")
        refusal = self._refusal(request)
        if refusal is not None:
            refusal.force_close()
            self.requests.labels(_route_label(request), str(refusal.status)).inc()
            return refusal
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route_label(request)
        try:
            refusal = self._refusal(request)
            response: web.StreamResponse = refusal if refusal is not None else await handler(request)
        except HttpError as exc:
            response = json_error(exc.status, exc.message)
        except web.HTTPException as exc:  # aiohttp's own: 404 for unknown paths, 405 (with Allow), 413
            if exc.status < 400:
                raise
            response = json_error(exc.status, exc.reason or "error")
            for name in ("Allow",):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        except RecursionError:
            response = json_error(400, "the request is nested too deeply")
        except Exception as exc:
            code = status_for(exc)
            if code is None:
                log.error("HTTP %s %s failed", request.method, route, exc_info=exc)
                response = json_error(500, f"internal error: {type(exc).__name__}")
            else:
                response = json_error(HTTP_STATUS.get(code, 400), message_for(exc))
        if request.body_exists and (not request.content.at_eof() or request.get(BODY_REFUSED, False)):
            # The rest of the body is drained raw (never inflated) and the connection closed: say so.
            response.force_close()
        self.requests.labels(route, str(response.status)).inc()
        self.duration.labels(route).observe(time.perf_counter() - started)
        return response

    async def _to_studio(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/studio"})

    async def _studio(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STUDIO / "index.html", headers={"Cache-Control": "no-cache"})

    async def start(self) -> int:
        opts = self.options
        # A stop waits --grace for in-flight requests, as gRPC does; aiohttp reads no more of a body
        # once it is stopping, so an upload still under way could otherwise hold it for the body timeout.
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=opts.grace_s
        )
        await self.runner.setup()
        site = GuardedSite(self.runner, opts.host, opts.http_port or 0, self.limits, _ssl(opts))
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        self.port = site.bound_port
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _bytes(text: str) -> bytes:
    """A header's text as the bytes that came (aiohttp keeps non-UTF-8 bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


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
