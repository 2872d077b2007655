"""FastAPI wiring: the app factory, its lifespan and OpenAI-shaped error responses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .emulator import Emulator
from .errors import RealtimeError
from .handlers import router
from .settings import Settings
from .websocket import DENIAL_IS_NO_ERROR
from .websocket import router as websocket_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The emulator's ASGI app; state is built when it starts, not at import."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        emulator = Emulator.from_settings(settings)
        app.state.emulator = emulator
        try:
            yield
        finally:
            await emulator.close()

    app = FastAPI(title="OpenCouch Realtime emulator", lifespan=lifespan, docs_url=None)
    # Browsers call /v1/realtime/* from the web page's own origin.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "OpenAI-Safety-Identifier",
            "X-Emulator-Faults",
            "X-Emulator-Scenario",
        ],
        expose_headers=["Location"],
    )
    app.include_router(router)
    app.include_router(websocket_router)
    logging.getLogger("uvicorn.error").addFilter(DENIAL_IS_NO_ERROR)  # once, however many apps

    @app.exception_handler(RealtimeError)
    async def realtime_error(_: Request, error: RealtimeError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_: Request, __: ClientDisconnect) -> Response:
        # The client left before its body arrived (it timed out, say): nobody to answer, and
        # no error of ours to log with a traceback.
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        body = RealtimeError(message=str(first.get("msg", "Invalid request.")), param=param)
        return JSONResponse(body.body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = (
            f"Invalid URL ({request.method} {request.url.path})"
            if error.status_code == 404
            else str(error.detail)
        )
        body = RealtimeError(message=message, status=error.status_code)
        return JSONResponse(body.body(), status_code=error.status_code)

    return app
