"""Every failure the server knows, and the one table that maps them to gRPC status codes.

Servicers raise these; artctl_serving.interceptors turns them into the status the client sees. Anything
not listed is a bug and becomes INTERNAL with a log line.
"""

from __future__ import annotations

import grpc

from artctl.directions import DirectionsError
from artctl.modelcard import ModelCardError
from artctl.seeds import SeedError


class InvalidRequestError(ValueError):
    """The request cannot be served as sent (INVALID_ARGUMENT)."""


class RequestTooLargeError(InvalidRequestError):
    """A request no server state could ever admit (bigger than the whole queue or the message limit)."""


class ModelNotFoundError(LookupError):
    """No model of that name (NOT_FOUND)."""


class QueueFullError(RuntimeError):
    """The bounded queue cannot take the request now (RESOURCE_EXHAUSTED)."""


class DeadlineExpiredError(RuntimeError):
    """The request's deadline passed before its images were computed (DEADLINE_EXCEEDED)."""


class BatcherClosedError(RuntimeError):
    """The server is shutting down and admits no new work (UNAVAILABLE)."""


class ModelLoadError(RuntimeError):
    """A model file that cannot be served (missing, corrupt, or without an artctl card)."""


class NoStyleGraphsError(ModelLoadError):
    """The model has no (usable) mapping/synthesis graphs."""


_STATUS: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (SeedError, grpc.StatusCode.INVALID_ARGUMENT),
    (DirectionsError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (QueueFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExpiredError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BatcherClosedError, grpc.StatusCode.UNAVAILABLE),
]

__all__ = [
    "BatcherClosedError",
    "DeadlineExpiredError",
    "InvalidRequestError",
    "ModelCardError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoStyleGraphsError",
    "QueueFullError",
    "RequestTooLargeError",
    "status_for",
]


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status code for a known failure, None for a bug (which becomes INTERNAL)."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return None


def message_for(exc: BaseException) -> str:
    text = str(exc)
    return text.strip("'\"") if isinstance(exc, LookupError) else text
