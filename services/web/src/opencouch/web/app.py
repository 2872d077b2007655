"""Starlette wiring: the pages, their config, static assets and JSON errors."""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from opencouch.contracts.common import ErrorBody, ErrorCode, ErrorResponse

from .security import SecurityHeadersMiddleware, security_headers
from .settings import Settings

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
PAGES_DIR = PACKAGE_DIR / "pages"
STATIC_DIR = PACKAGE_DIR / "static"

# Pages change with each release and carry no fingerprint in their names; revalidate each time.
PAGE_HEADERS = {"Cache-Control": "no-cache"}

_ERROR_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
}


def error_response(status: int, code: ErrorCode, message: str) -> JSONResponse:
    """The house error body, ``{"error": {"code", "message"}}``, with ``status``."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message[:500]))
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _page(name: str) -> FileResponse:
    return FileResponse(PAGES_DIR / name, media_type="text/html", headers=PAGE_HEADERS)


async def voice_page(_: Request) -> Response:
    """The product voice page."""
    return _page("voice.html")


async def realtime_dev_page(_: Request) -> Response:
    """The lower-level page for inspecting raw gateway replies."""
    return _page("realtime-dev.html")


async def root(_: Request) -> Response:
    """The site has one product page; send visitors there."""
    return RedirectResponse("/voice", status_code=307)


async def healthz(_: Request) -> Response:
    """The process is up and serving; the web client has no dependencies to check."""
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, error: Exception) -> Response:
    """Turn Starlette's 404/405 (routes and static files alike) into the house error body."""
    assert isinstance(error, HTTPException)
    code = _ERROR_CODES.get(error.status_code, ErrorCode.INVALID_REQUEST)
    if error.status_code == 404:
        # The path is echoed for the reader's sake; it is cut short and sent as JSON only.
        message = f"Nothing here: {request.url.path[:200]}"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed here."
    else:
        message = str(error.detail)
    response = error_response(error.status_code, code, message)
    if error.headers:
        # Keeps e.g. the Allow header of a 405.
        response.headers.update(error.headers)
    return response


async def internal_error(request: Request, error: Exception) -> Response:
    """An unexpected failure: log its type and path only, answer with the house error body."""
    logger.error(
        "unhandled error",
        extra={"path": request.url.path, "error_type": type(error).__name__},
    )
    return error_response(500, ErrorCode.INTERNAL, "Something went wrong on our side.")


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The web client's ASGI app, wrapped so every response carries the security headers."""
    settings = settings or Settings()
    # The platform's MIME table may be missing (slim images) or dated; module scripts and
    # stylesheets must be sent with these types because of ``nosniff``.
    mimetypes.add_type("text/javascript", ".js")
    mimetypes.add_type("text/css", ".css")
    mimetypes.add_type("image/svg+xml", ".svg")

    config = {"api_base_url": settings.api_base_url}

    async def config_json(_: Request) -> Response:
        """Where the page finds the voice API; read fresh each load so a redeploy applies."""
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    app = Starlette(
        # Pages, scripts and styles go out compressed: what the asset budget measures.
        middleware=[Middleware(GZipMiddleware, minimum_size=500, compresslevel=9)],
        routes=[
            Route("/", root),
            Route("/voice", voice_page),
            Route("/voice/realtime-dev", realtime_dev_page),
            Route("/config.json", config_json),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    # Outside Starlette's own middleware stack, so 500 pages get the headers too.
    return SecurityHeadersMiddleware(app, security_headers(settings))
