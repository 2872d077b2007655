"""Run a service until SIGTERM or SIGINT, then let it shut down cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import uvloop

from opencouch.runtime.logs import configure_logging
from opencouch.runtime.metrics import serve_metrics
from opencouch.runtime.settings import NatsServiceSettings
from opencouch.runtime.tracing import configure_tracing, disable_tracing


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM or SIGINT sets ``stop``, and ``main`` returns after cleanup."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    # uvloop: the same asyncio API, with a loop and transports written in C.
    uvloop.run(runner())


async def serve_until_stopped(stop: asyncio.Event, *workers: asyncio.Task[None]) -> None:
    """Wait for ``stop``; if a background worker dies first, re-raise its error.

    A consumer loop that crashed must take the process down so the orchestrator restarts it,
    rather than leave a healthy-looking service that no longer consumes.
    """
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({stopper, *workers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    stop.set()
    for worker in workers:
        if worker in done and not worker.cancelled() and worker.exception() is not None:
            raise RuntimeError("a background worker stopped") from worker.exception()
    await asyncio.gather(*workers, return_exceptions=True)


def run_service(
    name: str, settings: NatsServiceSettings, serve: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """A NATS service's whole ``main``: JSON logs tagged ``name``, traces when configured,
    ``/metrics`` on its own port, then ``serve`` until SIGTERM (spans flushed on the way out).

    Tracing starts before ``serve`` opens any connection, so every SQL connection is traced.
    """
    configure_logging(name, settings.log_level)
    configure_tracing(f"opencouch-{name}", settings.otlp_endpoint)
    try:
        with serve_metrics(settings.metrics_host, settings.serving_metrics_port):
            run_until_stopped(serve)
    finally:
        disable_tracing()
