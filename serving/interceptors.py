"""The status interceptor: every RPC of artctl's services is timed, counted and given its status here.

Servicers raise the exceptions of serving.errors; this maps them to gRPC codes (a bug becomes
INTERNAL with one log line), so no servicer handles errors itself. A call is counted before its
status goes out, so a client that sees the status and then scrapes /metrics always finds it
counted. A request that does not decode is INVALID_ARGUMENT, with one line, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from serving.errors import InvalidRequestError, message_for, status_for
from serving.metrics import ServerMetrics

log = logging.getLogger("artctl.serving")
MODEL_FIELDS = ("model", "model_name", "name")  # where each request names its model
DEFAULT_LABEL, UNKNOWN_LABEL = "default", "unknown"


class UndecodableRequest(InvalidRequestError):
    """Stands in for a request whose bytes are not the message the method takes."""


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            return UndecodableRequest(f"cannot decode the request ({exc})")

    return decode


class StatusInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the handlers of `services` (full service names); others pass through untouched."""

    def __init__(
        self, metrics: ServerMetrics, services: tuple[str, ...], loaded: Callable[[], list[str]]
    ) -> None:
        self.metrics = metrics
        self.prefixes = tuple(f"/{s}/" for s in services)
        self.loaded = loaded

    def model_label(self, name: str) -> str:
        """The `model` label of a call's metrics: the name asked for when it names a loaded model,
        else one fixed value, so names made up by clients never become series of their own."""
        if name in ("", DEFAULT_LABEL):
            return DEFAULT_LABEL
        return name if name in self.loaded() else UNKNOWN_LABEL

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(self.prefixes):
            return handler
        rpc = method.rsplit("/", 1)[-1]
        kw = {
            "request_deserializer": _lenient(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(self._unary(rpc, handler.unary_unary), **kw)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(self._stream(rpc, handler.unary_stream), **kw)
        return handler  # artctl has no client-streaming methods

    def _counter(self, rpc: str, request: Any) -> Callable[[grpc.StatusCode], None]:
        started = time.perf_counter()
        name = next((getattr(request, f) for f in MODEL_FIELDS if hasattr(request, f)), "")
        model = self.model_label(str(name))

        def count(code: grpc.StatusCode) -> None:
            self.metrics.requests.labels(model, rpc, code.name).inc()
            self.metrics.request_duration.labels(rpc).observe(time.perf_counter() - started)

        return count

    async def _fail(
        self,
        exc: Exception,
        rpc: str,
        context: grpc.aio.ServicerContext,
        count: Callable[[grpc.StatusCode], None],
    ) -> None:
        """Count and send the status for a failure; always raises (context.abort does)."""
        if isinstance(exc, grpc.aio.AbortError):
            count(context.code() or grpc.StatusCode.UNKNOWN)  # type: ignore[arg-type]
            raise exc
        known = status_for(exc)
        if known is None:
            log.error("%s failed", rpc, exc_info=exc)
        code = known or grpc.StatusCode.INTERNAL
        count(code)
        await context.abort(code, message_for(exc) if known else f"internal error: {type(exc).__name__}")

    def _unary(self, rpc: str, behaviour: Any) -> Any:
        """A unary method is counted as the one-item stream it is, so both share one error path."""

        async def one(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            yield await behaviour(request, context)

        stream = self._stream(rpc, one)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            (result,) = [item async for item in stream(request, context)]
            return result

        return call

    def _stream(self, rpc: str, behaviour: Any) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            count = self._counter(rpc, request)
            try:
                if isinstance(request, UndecodableRequest):
                    raise request
                async for item in behaviour(request, context):
                    yield item
            except asyncio.CancelledError:
                count(grpc.StatusCode.CANCELLED)
                raise
            except Exception as exc:
                await self._fail(exc, rpc, context, count)
            count(grpc.StatusCode.OK)

        return call
