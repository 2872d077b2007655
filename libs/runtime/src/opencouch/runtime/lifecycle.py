"""Run a service until SIGTERM or SIGINT, then let it shut down cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from opencouch.runtime.logs import configure_logging


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM or SIGINT sets ``stop``, and ``main`` returns after cleanup."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


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
    name: str, log_level: str, serve: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """A service's whole ``main``: JSON logs tagged ``name``, then ``serve`` until SIGTERM."""
    configure_logging(name, log_level)
    run_until_stopped(serve)
