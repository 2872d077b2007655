"""The one error type of every service, and the one way to describe a validation failure.

A ``ServiceError`` carries a machine-readable ``ErrorCode`` and a message written for a person.
The same error travels as an HTTP error body, a NATS error reply and a tool error output, so
each layer maps it, never rewrites it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from opencouch.contracts.common import ErrorBody, ErrorCode, ErrorResponse

HTTP_STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.VOICE_SESSION_NOT_FOUND: 404,
    ErrorCode.TURN_CONFLICT: 409,
    ErrorCode.TOKEN_MISSING: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_MISMATCH: 403,
    ErrorCode.IDENTITY_REQUIRED: 401,
    ErrorCode.IDENTITY_INVALID: 401,
    ErrorCode.THREAD_FORBIDDEN: 403,
    ErrorCode.SESSION_ENDED: 409,
    ErrorCode.SESSION_EXPIRED: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_SESSIONS: 429,
    ErrorCode.CALL_ID_MISSING: 422,
    ErrorCode.CALL_CONFLICT: 409,
    ErrorCode.REALTIME_UNAVAILABLE: 503,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.SERVICE_TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}
"""The HTTP status of each code that can end a request (tool codes travel inside 200 outputs)."""


class ServiceError(Exception):
    """Something a caller can act on: a code, a message, and how an HTTP reply should carry it.

    ``status`` defaults to the code's usual HTTP status; ``retry_after`` (seconds) is sent as
    ``Retry-After`` when set.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message[:500]
        self.status = status if status is not None else HTTP_STATUS.get(code, 400)
        self.retry_after = retry_after

    @property
    def body(self) -> ErrorBody:
        """The error as the contracts carry it."""
        return ErrorBody(code=self.code, message=self.message)

    def response(self) -> ErrorResponse:
        """``{"error": {"code", "message"}}``."""
        return ErrorResponse(error=self.body)


def describe_validation(
    error: ValidationError | Iterable[Mapping[str, Any]], *, root: str = "body"
) -> str:
    """Where the input was wrong and why, without echoing values (they may be user text).

    Takes a pydantic ``ValidationError`` or its ``errors()`` list (as FastAPI hands them on).
    """
    items = error.errors(include_input=False) if isinstance(error, ValidationError) else error
    parts = []
    for item in items:
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{location or root}: {item.get('msg', 'invalid')}")
    return ("; ".join(parts) or "invalid input")[:500]


def unreachable_store(error: BaseException) -> str | None:
    """Which store ``error`` says is down or unreachable (``"postgres"``, ``"redis"``, or
    ``"nats"`` for NATS or JetStream), else None. Not the caller's fault, and over when the
    store is back: a service answers it
    ``service_unavailable`` (a tool, ``tool_unavailable``), with a warning and no traceback,
    whichever handler met it."""
    for kinds, store in _store_outages():
        if isinstance(error, kinds):
            return store
    return None


@functools.cache
def _store_outages() -> tuple[tuple[tuple[type[BaseException], ...], str], ...]:
    """The outage errors of each store client this service has installed (the runtime's
    ``postgres`` and ``redis`` extras), as ``postgres`` and ``redis_client`` define them."""
    from opencouch.runtime.messaging import BUS_OUTAGES  # imports this module

    found: list[tuple[tuple[type[BaseException], ...], str]] = [(BUS_OUTAGES, "nats")]
    try:
        from opencouch.runtime.postgres import POSTGRES_OUTAGES
    except ImportError:
        pass
    else:
        found.append((POSTGRES_OUTAGES, "postgres"))
    try:
        from opencouch.runtime.redis_client import REDIS_OUTAGES
    except ImportError:
        pass
    else:
        found.append((REDIS_OUTAGES, "redis"))
    return tuple(found)
