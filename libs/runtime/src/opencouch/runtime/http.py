"""Serve an ASGI app with uvicorn under the same SIGTERM lifecycle as every other service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from opencouch.runtime.lifecycle import run_until_stopped


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: ``run_until_stopped`` owns SIGTERM.

    uvicorn re-raises the signal after a graceful shutdown, so the process would end "killed by
    SIGTERM"; here a graceful stop exits 0, like the NATS services.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_app(app: ASGIApp, *, host: str, port: int, graceful_seconds: int = 10) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then finish in-flight requests and exit."""
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # our JSON logging is set up; uvicorn's loggers propagate to it
            access_log=False,
            timeout_graceful_shutdown=graceful_seconds,
        )
    )

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving

    run_until_stopped(run)
