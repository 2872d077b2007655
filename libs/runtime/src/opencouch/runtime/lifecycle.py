"""Run a service until SIGTERM or SIGINT, then let it shut down cleanly.

A stop has two meanings. Once the service serves, it is graceful: ``stop`` is set and the
service finishes what it is doing. Before that, the start itself is cancelled: a service still
waiting for NATS, Redis or Postgres has nothing to finish, and an orchestrator stopping it (a
rollout, ``docker compose down`` during an outage) must not wait for its kill timeout.

A process that serves keeps what its start built (modules, the app, its clients and catalogs)
until it exits. Once it serves, that heap is frozen out of the garbage collector
(``gc.freeze``): a full collection no longer walks it. Without that, every full collection of
the gateway walked its whole startup heap and held its event loop for about 70 ms, now and then,
in the middle of a conversation's tool calls (the p99 of tool calls at 32 connections was
that pause).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import weakref
from collections.abc import Awaitable, Callable

import uvloop

from opencouch.runtime.logs import configure_logging
from opencouch.runtime.metrics import serve_metrics
from opencouch.runtime.settings import NatsServiceSettings
from opencouch.runtime.tracing import configure_tracing, disable_tracing

log = logging.getLogger(__name__)

_serving: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
_whole_process: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
"""The stops of services that are their process (``run_until_stopped``), not one run inside
another program (a test), whose heap is not theirs to freeze."""


def mark_serving(stop: asyncio.Event) -> None:
    """The service of ``stop`` is up: from now on a stop is graceful, not a cancelled start.
    A service that is its whole process freezes the heap its start built."""
    if stop in _whole_process and stop not in _serving:
        gc.collect()  # what the start left as garbage is freed, not kept for good
        gc.freeze()
    _serving.add(stop)


def run_until_stopped(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``. SIGTERM or SIGINT sets ``stop``, and ``main`` returns after its
    cleanup; before ``main`` marks itself serving, the signal cancels it instead."""

    async def runner() -> None:
        stop = asyncio.Event()
        _whole_process.add(stop)
        started = asyncio.ensure_future(main(stop))

        def on_signal() -> None:
            stop.set()
            if stop not in _serving:
                started.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await started
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            log.info("stopped while starting")

    # uvloop: the same asyncio API, with a loop and transports written in C.
    uvloop.run(runner())


async def serve_until_stopped(stop: asyncio.Event, *workers: asyncio.Task[None]) -> None:
    """Mark the service serving, then wait for ``stop``; if a background worker dies first,
    re-raise its error.

    A consumer loop that crashed must take the process down so the orchestrator restarts it,
    rather than leave a healthy-looking service that no longer consumes.
    """
    mark_serving(stop)
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
