"""Exceptions -> gRPC status codes, in one table both APIs share."""

from __future__ import annotations

import grpc

from artctl.seeds import SeedError
from serving.batcher import BatcherClosedError, DeadlineExpiredError, QueueFullError
from serving.registry import ModelNotFoundError
from serving.validation import InvalidRequestError

_STATUS: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (SeedError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (QueueFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExpiredError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BatcherClosedError, grpc.StatusCode.UNAVAILABLE),
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
