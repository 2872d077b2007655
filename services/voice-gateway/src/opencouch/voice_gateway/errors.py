"""Every error leaves the gateway as ``{"error": {"code", "message"}}`` with a 4xx or 5xx."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencouch.contracts.common import ErrorBody, ErrorCode, ErrorResponse

log = logging.getLogger(__name__)

_CODE_FOR_STATUS = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
}


class ApiError(Exception):
    """An error that carries its own status and code, raised anywhere below a route."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: ErrorCode, message: str) -> JSONResponse:
    """The JSON error body with ``status``."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message[:500]))
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _describe(error: RequestValidationError) -> str:
    """Where the body was wrong, without echoing values (they may be what the user said)."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to the error body; nothing escapes as a bare 500."""

    async def on_api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error_response(error.status, error.code, error.message)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return error_response(422, ErrorCode.INVALID_REQUEST, _describe(error))

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = _CODE_FOR_STATUS.get(error.status_code, ErrorCode.INVALID_REQUEST)
        return error_response(error.status_code, code, str(error.detail))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(500, ErrorCode.INTERNAL, "internal error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
