"""The Prometheus port: prometheus-client's own exposition, in its own threads (so /metrics answers
even while the event loop is busy), with the bearer token as an opt-in (--metrics-auth).

What it shows: request counts and latencies by method and route, queue depth, batch sizes, the
response cache, and each model's name and SHA-256 (docs/deploy.md). Nothing there renders an image,
but the SHA names the exact model file, so a port reachable from outside wants the token.
"""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


def _guarded(app: Wsgi, token: str) -> Wsgi:
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"missing or invalid bearer token (Authorization: Bearer <token>)\n"]

    return guarded


def start_metrics(host: str, port: int, registry: CollectorRegistry, token: str | None) -> WSGIServer:
    """Serve /metrics on host:port until .shutdown(); with a token, only to requests that carry it."""
    app: Wsgi = make_wsgi_app(registry)
    if token is not None:
        app = _guarded(app, token)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, app, Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, name="artctl-metrics", daemon=True).start()
    return httpd
