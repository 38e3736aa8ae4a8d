"""The status interceptor: every RPC of artctl's services is timed, counted and given its status here.

Servicers raise the exceptions of artctl_serving.errors; this maps them to gRPC codes (a bug becomes
INTERNAL with one log line), so no servicer handles errors itself. A call is counted before its
status goes out, so a client that sees the status and then scrapes /metrics always finds it
counted. A request that does not decode is INVALID_ARGUMENT, with one line, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from artctl_serving.errors import InvalidRequestError, message_for, status_for
from artctl_serving.metrics import ServerMetrics

log = logging.getLogger("artctl.serving")
MODEL_FIELDS = ("model", "model_name", "name")  # where each request names its model
UNKNOWN_LABEL = "unknown"
# Triton's RPCs that artctl does not serve: a call to one is counted under its own name (tools probe
# them), any other unknown method under "unknown", so made-up paths never become series of their own.
TRITON_ONLY = frozenset(
    {
        "RepositoryModelLoad",
        "RepositoryModelUnload",
        "SystemSharedMemoryStatus",
        "SystemSharedMemoryRegister",
        "SystemSharedMemoryUnregister",
        "CudaSharedMemoryStatus",
        "CudaSharedMemoryRegister",
        "CudaSharedMemoryUnregister",
        "TraceSetting",
        "LogSettings",
    }
)


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
        self,
        metrics: ServerMetrics,
        services: tuple[str, ...],
        resolve: Callable[[str], str | None],
    ) -> None:
        self.metrics = metrics
        self.prefixes = tuple(f"/{s}/" for s in services)
        self.resolve = resolve  # the name a request asks for -> the loaded model it reaches, or None

    def model_label(self, name: str) -> str:
        """The `model` label of a call's metrics: the model that serves it (the default model's own
        name when the request names none, as artctl_model_info and artctl_images_total have it),
        else one fixed value, so names made up by clients never become series of their own."""
        return self.resolve(name) or UNKNOWN_LABEL

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None:
            return self._unimplemented(method)
        if not method.startswith(self.prefixes):
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
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(self._bidi(rpc, handler.stream_stream), **kw)
        return handler  # artctl has no client-streaming methods

    def _unimplemented(self, method: str) -> grpc.RpcMethodHandler:
        """A method no servicer has: UNIMPLEMENTED, as gRPC would answer, but counted."""
        service, _, rpc = method.lstrip("/").rpartition("/")
        known = service == "inference.GRPCInferenceService" and rpc in TRITON_ONLY
        label = rpc if known else UNKNOWN_LABEL

        async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.metrics.requests.labels(UNKNOWN_LABEL, label, grpc.StatusCode.UNIMPLEMENTED.name).inc()
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"artctl does not serve {method[:96]}")
            return b""  # not reached: abort raises

        return grpc.unary_unary_rpc_method_handler(refuse)

    def _counter(self, rpc: str, request: Callable[[], Any]) -> Callable[[grpc.StatusCode], None]:
        """count(code): the call once, under the model its request names; `request()` is asked at
        count time, so a stream can name its first request (None: no request came)."""
        started = time.perf_counter()

        def count(code: grpc.StatusCode) -> None:
            first = request()
            if first is None:
                model = UNKNOWN_LABEL
            else:
                name = next((getattr(first, f) for f in MODEL_FIELDS if hasattr(first, f)), "")
                model = self.model_label(str(name))
            self.metrics.requests.labels(model, rpc, code.name).inc()
            self.metrics.request_duration.labels(model, rpc, code.name).observe(time.perf_counter() - started)

        return count

    async def _relay(
        self,
        items: AsyncGenerator[Any, None],
        rpc: str,
        context: grpc.aio.ServicerContext,
        count: Callable[[grpc.StatusCode], None],
    ) -> AsyncGenerator[Any, None]:
        """A behaviour's items, passed on; the call counted once and its failure sent as a status.
        Closing the relay closes `items` at once, so a stream's clean-up does not wait for GC."""
        try:
            async with contextlib.aclosing(items) as each:
                async for item in each:
                    yield item
        except asyncio.CancelledError:
            count(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:
            await self._fail(exc, rpc, context, count)
        count(grpc.StatusCode.OK)

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
            async def items() -> AsyncGenerator[Any, None]:
                if isinstance(request, UndecodableRequest):
                    raise request
                async for item in behaviour(request, context):
                    yield item

            relay = self._relay(items(), rpc, context, self._counter(rpc, lambda: request))
            async with contextlib.aclosing(relay) as each:
                async for item in each:
                    yield item

        return call

    def _bidi(self, rpc: str, behaviour: Any) -> Any:
        """A bidirectional stream is one call, counted once under the model its first request
        names; a request in it that does not decode ends the stream with INVALID_ARGUMENT."""

        async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            first: list[Any] = []

            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if not first:
                        first.append(request)
                    if isinstance(request, UndecodableRequest):
                        raise request
                    yield request

            count = self._counter(rpc, lambda: first[0] if first else None)
            async with contextlib.aclosing(
                self._relay(behaviour(checked(), context), rpc, context, count)
            ) as each:
                async for item in each:
                    yield item

        return call
