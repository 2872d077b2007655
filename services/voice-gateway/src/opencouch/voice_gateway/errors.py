"""Every error leaves the gateway as ``{"error": {"code", "message"}}`` with a 4xx or 5xx.

Infrastructure outages (NATS, Redis) are 503 with ``Retry-After``: the browser may retry.
Anything the browser cannot fix by retrying is a 4xx, so it never retries forever.
"""

from __future__ import annotations

import logging
import math

import nats.errors
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencouch.contracts.common import ErrorCode
from opencouch.runtime.errors import ServiceError, describe_validation
from opencouch.runtime.logs import RepeatedFailure
from opencouch.runtime.messaging import OUTAGE_RETRY_SECONDS, nats_failure

log = logging.getLogger(__name__)

_CODE_FOR_STATUS = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def error_response(error: ServiceError) -> JSONResponse:
    """The JSON error body for ``error``, with its status and ``Retry-After`` when set."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse(
        error.response().model_dump(mode="json"), status_code=error.status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the error body; nothing escapes as a bare 500.

    An outage of Redis or NATS fails every request: it is logged once every few seconds
    with a count, not once a request (``opencouch_http_request_duration_seconds`` counts
    every 503 by route)."""
    redis_down = RepeatedFailure(log, "redis unavailable")
    nats_down = RepeatedFailure(log, "nats unavailable")

    async def on_service_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return error_response(error)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return error_response(
            ServiceError(ErrorCode.INVALID_REQUEST, describe_validation(error.errors()))
        )

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = _CODE_FOR_STATUS.get(error.status_code, ErrorCode.INVALID_REQUEST)
        return error_response(ServiceError(code, str(error.detail), status=error.status_code))

    async def on_redis(request: Request, error: Exception) -> JSONResponse:
        redis_down(path=request.url.path, error=type(error).__name__)
        return error_response(
            ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "Session state is unavailable; try again shortly.",
                retry_after=OUTAGE_RETRY_SECONDS,
            )
        )

    async def on_nats(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, nats.errors.Error)
        nats_down(path=request.url.path, error=type(error).__name__)
        return error_response(nats_failure(error, "the message bus"))

    async def on_too_deep(request: Request, error: Exception) -> JSONResponse:
        # json.loads gives up on absurd nesting before any model sees the body.
        return error_response(ServiceError(ErrorCode.INVALID_REQUEST, "body: nested too deeply"))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(ServiceError(ErrorCode.INTERNAL, "internal error"))

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(redis.exceptions.RedisError, on_redis)
    app.add_exception_handler(nats.errors.Error, on_nats)
    app.add_exception_handler(RecursionError, on_too_deep)
    app.add_exception_handler(Exception, on_unexpected)
