"""Serve an ASGI app with uvicorn under the same SIGTERM lifecycle as every other service, and
observe it: request latency by route template, and (when tracing is on) a span per request that
continues the caller's ``traceparent``. ``/metrics`` is served on a port of its own, as the NATS
services serve theirs: never on the public one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Iterator
from typing import Final

import uvicorn
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencouch.runtime.lifecycle import mark_serving, run_until_stopped
from opencouch.runtime.metrics import HTTP_REQUEST_SECONDS, serve_metrics
from opencouch.runtime.observation import name_http_span, serving_http
from opencouch.runtime.tracing import tracing_enabled

log = logging.getLogger(__name__)

UNOBSERVED_PATHS: Final = ("/healthz", "/readyz")
"""Probes: neither traced nor timed."""


def observe_http_app(app: ASGIApp) -> ASGIApp:
    """``app`` with request timing by route and (when tracing is on) a span per request
    continuing the caller's ``traceparent``. Wrap before serving."""
    return RequestObserver(app)


class Observed:
    """What the observer learns of one response: its status, once it starts (500 if the app
    fails before answering)."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 500


class RequestObserver:
    """Times every request by its route template (never by the raw path: it holds ids) and,
    while tracing is on, makes its server span.

    The span is made here rather than by OpenTelemetry's ASGI instrumentation, which collects a
    dozen attributes per request and cost as much as the rest of a tool call's tracing.

    A service whose other per-request concerns belong in the same outermost layer (the gateway's
    edge) subclasses it and overrides ``serve``: one layer and one ``send`` wrapper per request
    instead of one of each per concern.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observed = Observed()
        if scope["path"] in UNOBSERVED_PATHS:
            await self.serve(scope, receive, send, observed)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        with serving_http(method, _trace_headers(scope)) as span:
            try:
                await self.serve(scope, receive, send, observed)
            finally:
                # The router records the matched route in the scope; nothing matched: "unmatched".
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                _request_seconds(route, method, observed.status).observe(
                    time.perf_counter() - started
                )
                name_http_span(span, method, route, observed.status)

    async def serve(self, scope: Scope, receive: Receive, send: Send, observed: Observed) -> None:
        """Serve one HTTP request, recording its status in ``observed`` as the response
        starts."""

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                observed.status = message["status"]
            await send(message)

        await self.app(scope, receive, send_observed)


@functools.lru_cache(maxsize=1024)
def _request_seconds(route: str, method: str, status: int) -> Histogram:
    """The histogram child of one label set (labels() takes a lock and checks on every call);
    route templates, the methods the parser knows and statuses are few."""
    return HTTP_REQUEST_SECONDS.labels(route, method, str(status))


def _trace_headers(scope: Scope) -> dict[str, str] | None:
    """The request's W3C trace context headers, if tracing is on and it sent any."""
    if not tracing_enabled():
        return None
    found = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _TRACE_HEADERS
    }
    return found or None


_TRACE_HEADERS: Final = frozenset({b"traceparent", b"tracestate"})


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: ``run_until_stopped`` owns SIGTERM.

    uvicorn re-raises the signal after a graceful shutdown, so the process would end "killed by
    SIGTERM"; here a graceful stop exits 0, like the NATS services. Once the app's startup has
    run and the socket is bound, ``stop`` is marked serving (until then a stop cancels the start).
    """

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self._stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            mark_serving(self._stop)


def server_config(
    app: ASGIApp, *, host: str, port: int, graceful_seconds: int = 10
) -> uvicorn.Config:
    """How every HTTP service is served.

    uvicorn's proxy headers are off: by default it takes the client address from
    ``X-Forwarded-For`` whenever the peer is 127.0.0.1, so any local process could choose the
    address the gateway's per-client limits count against. A service that sits behind a proxy
    says so in its own settings (the gateway's ``trust_forwarded_for``)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging is set up; uvicorn's loggers propagate to it
        access_log=False,
        http="httptools",
        proxy_headers=False,
        server_header=False,  # no "server: uvicorn" advertised to every client
        timeout_graceful_shutdown=graceful_seconds,
    )


def serve_app(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    metrics_host: str,
    metrics_port: int,
    graceful_seconds: int = 10,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then finish in-flight requests and exit; and
    ``/metrics`` on ``metrics_host:metrics_port`` meanwhile."""
    config = server_config(app, host=host, port=port, graceful_seconds=graceful_seconds)

    async def run(stop: asyncio.Event) -> None:
        server = _Server(config, stop)
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Stopped while starting: the app's startup is cut short. uvicorn would report that
            # as a failed startup, with a traceback; the stop is logged as what it is instead.
            logging.getLogger("uvicorn.error").disabled = True
            serving.cancel()
            raise
        finally:
            stopping.cancel()
        server.should_exit = True
        await serving

    with serve_metrics(metrics_host, metrics_port):
        run_until_stopped(run)
