"""The HTTP front's connections: limits, timeouts and parser errors, below the routes.

aiohttp parses requests before any middleware runs, so what must hold for every connection lives
here: a request's headers (and a TLS handshake) must arrive within the header timeout, an idle
keep-alive connection is closed after its own timeout, a body that no handler reads is drained raw
(never inflated) for at most LINGER_S before the connection closes, and the parser's own errors
become JSON replies (414 for the request line, 431 for headers) that never echo the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from artctl_serving.config import ServerOptions

log = logging.getLogger("artctl.serving")


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP client may send and be sent (the --http-* options)."""

    body_bytes: int = 64 * 2**20
    reply_bytes: int = 64 * 2**20
    header_bytes: int = 16 * 2**10
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_s: float = 75.0

    @classmethod
    def of(cls, options: ServerOptions) -> HttpLimits:
        return cls(
            body_bytes=options.http_max_body_mb * 2**20,
            reply_bytes=options.http_max_reply_mb * 2**20,
            header_bytes=options.http_max_header_kb * 2**10,
            header_timeout_s=options.http_header_timeout_s,
            body_timeout_s=options.http_body_timeout_s,
            keepalive_s=options.http_keepalive_s,
        )


class HttpError(Exception):
    """A request refused with this HTTP status and message (what no gRPC status says, e.g. 408)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


BODY_REFUSED = web.RequestKey("artctl.body_refused", bool)  # its body was refused part way


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def read_body(request: web.Request, limits: HttpLimits) -> bytes:
    """The whole body, decompressed and at most limits.body_bytes, sent within the body timeout; a
    body that cannot be had is the client's fault, never a 500."""
    request[BODY_REFUSED] = True  # until the whole body is had: the connection then closes
    inflater = Inflater(request.headers.get("Content-Encoding", ""))
    try:
        body = await asyncio.wait_for(_read_bounded(request, limits, inflater), limits.body_timeout_s)
        request[BODY_REFUSED] = False
        return body
    except asyncio.TimeoutError:
        raise HttpError(408, f"the request body took longer than {limits.body_timeout_s:g} s") from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise HttpError(400, f"the request body cannot be read ({_reason(exc)})") from None
    except ConnectionError:
        raise HttpError(400, "the client closed the connection before the body ended") from None


MAX_INFLATION = 64  # a compressed body may inflate this many times; JSON tensors compress ~5-10x
INFLATION_FLOOR = 2**20  # below a MiB inflated, any ratio is fine
INFLATE_STEP = 256 * 2**10  # at most this much inflated per call, so no chunk holds the event loop
LINGER_S = 2.0  # how long the raw bytes of a body no handler read are drained before closing


class Inflater:
    """A request body's Content-Encoding (gzip, deflate or none) undone in bounded steps.

    The server reads bodies raw (aiohttp's auto_decompress is off): aiohttp would inflate a whole
    wire chunk in one call on the event loop, and would inflate a refused body while draining it."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower()
        self.z: Any = None
        self.head = b""  # deflate: the first bytes, until they say zlib or raw
        self.consumed = 0  # wire bytes inflated so far: a bomb's ratio shows after its first steps
        if self.encoding in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding not in ("", "identity", "deflate"):
            raise HttpError(
                415, f"Content-Encoding {encoding[:40]!r} is not supported: send gzip, deflate or identity"
            )

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of the next wire chunk, INFLATE_STEP at a time."""
        if self.encoding in ("", "identity"):
            self.consumed += len(data)
            yield data
            return
        if self.z is None:  # deflate: RFC 9110 says zlib-wrapped, some clients send it raw
            self.head += data
            if len(self.head) < 2:
                return
            data, self.head = self.head, b""
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self.z = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        try:
            while data:
                out = self.z.decompress(data, INFLATE_STEP)
                self.consumed += len(data) - len(self.z.unconsumed_tail)
                data = self.z.unconsumed_tail
                if out:
                    yield out
        except zlib.error as exc:
            raise HttpError(400, f"the request body cannot be read (not {self.encoding}: {exc})") from None

    def finish(self) -> None:
        """Refuse a compressed body that ended early or goes on past its end."""
        if self.encoding in ("", "identity") or (self.z is None and not self.head):
            return
        if self.z is None or not self.z.eof:
            raise HttpError(400, f"the request body cannot be read (the {self.encoding} data ends early)")
        if self.z.unused_data:
            raise HttpError(400, f"the request body cannot be read (bytes after the {self.encoding} data)")


async def _read_bounded(request: web.Request, limits: HttpLimits, inflater: Inflater) -> bytes:
    """The body, refused as soon as it passes the limit or inflates like a bomb (after about a MiB,
    not at the limit)."""
    chunks, size = [], 0
    while chunk := await request.content.readany():
        for piece in inflater.feed(chunk):
            size += len(piece)
            if size > limits.body_bytes:
                raise HttpError(413, too_large(limits))
            if inflater.z is not None and size > INFLATION_FLOOR and size > MAX_INFLATION * inflater.consumed:
                raise HttpError(
                    413, f"the compressed body inflates more than {MAX_INFLATION} times; send it uncompressed"
                )
            chunks.append(piece)
    inflater.finish()
    return b"".join(chunks)


def too_large(limits: HttpLimits) -> str:
    return (
        f"the request body is over the {limits.body_bytes // 2**20} MiB limit (after decompression; "
        "--http-max-body-mb)"
    )


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return str(getattr(cause, "message", None) or cause or type(cause).__name__)[:200]


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a header timeout and JSON parser errors."""

    def __init__(
        self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, header_timeout: float, **kw: Any
    ):
        super().__init__(manager, loop=loop, **kw)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        log.debug("HTTP: no complete request headers in %.1f s; closing the connection", self._header_timeout)
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # the first request's headers are due within the timeout

    def data_received(self, data: bytes) -> None:
        idle = self._waiter is not None and not self._messages and not self._request_in_progress
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._disarm()  # headers complete: the body has its own timeout
        elif data and idle and self._header_timer is None:
            self._arm()  # a keep-alive connection began its next request

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The parser's refusals as JSON, without the request's bytes in them."""
        if request.writer.output_size > 0:
            raise ConnectionError("the reply had begun; cannot send an error")
        if isinstance(exc, LineTooLong):
            line = exc.args[0] if exc.args else b""
            first = bytes(line[:1]) if isinstance(line, (bytes, bytearray)) else str(line)[:1].encode()
            target = first in (b"/", b"*", b"h", b"H")  # a request target, not a header name
            status, text = (414, "the request line is too long") if target else (431, "a header is too long")
            text += f" (--http-max-header-kb {self.max_field_size // 1024})"
        elif isinstance(exc, HttpProcessingError) and "Too many headers" in str(exc.message):
            status, text = 431, f"too many headers (at most {self.max_headers})"
        elif status < 500:
            text = f"malformed HTTP request ({type(exc).__name__ if exc else 'bad request'})"
        else:
            log.error("HTTP: error handling a request", exc_info=exc)
            text = "internal error"
        response = web.Response(
            status=status, body=json.dumps({"error": text}).encode(), content_type="application/json"
        )
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are GuardedHandlers, with the TLS handshake on the header timeout."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        limits: HttpLimits,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_port=False)
        self.limits = limits
        self.bound_port = 0

    def _handler(self) -> GuardedHandler:
        server = self._runner.server
        assert server is not None
        lim = self.limits
        return GuardedHandler(
            server,
            loop=asyncio.get_running_loop(),
            header_timeout=lim.header_timeout_s,
            keepalive_timeout=lim.keepalive_s,
            max_line_size=lim.header_bytes,
            max_field_size=lim.header_bytes,
            auto_decompress=False,  # bodies are inflated by read_body, in bounded steps
            lingering_time=LINGER_S,  # drain (raw, never inflated) a body no handler read, so that
            # closing does not reset the connection and lose the reply on its way
            access_log=None,
        )

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:
            extra["ssl_handshake_timeout"] = self.limits.header_timeout_s
        self._server = await loop.create_server(
            self._handler,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=False,
            **extra,
        )
        self.bound_port = int(self._server.sockets[0].getsockname()[1])
