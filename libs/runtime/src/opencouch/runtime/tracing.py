"""Tracing: off unless an OTLP endpoint is configured; then every process exports its spans.

One trace follows a tool call or a turn from the browser's ``traceparent`` through the gateway,
NATS (request/reply and JetStream, context in message headers: ``opencouch.runtime.observation``)
into the owning service, its Redis and its SQL. Spans carry ids, names, codes, outcomes and
sizes; never what a user said, tool arguments or outputs (Redis commands are recorded without
their arguments, SQL without its parameters).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status

log = logging.getLogger(__name__)

TRACER_NAME: Final = "opencouch"
_EXPORT_TIMEOUT_SECONDS: Final = 5.0
_FLUSH_MILLIS: Final = 5000


@dataclass(frozen=True)
class _Tracing:
    provider: trace.TracerProvider
    tracer: trace.Tracer
    owned: bool
    """Whether this module built the provider (and so shuts it down)."""


_active: _Tracing | None = None


def tracing_enabled() -> bool:
    """Whether this process records spans."""
    return _active is not None


def tracer() -> trace.Tracer:
    """The tracer spans of this product are made with (a no-op one while tracing is off)."""
    return _active.tracer if _active is not None else trace.NoOpTracer()


def tracer_provider() -> trace.TracerProvider | None:
    """The provider in use, for instrumentations that take one; None while tracing is off."""
    return _active.provider if _active is not None else None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def configure_tracing(service: str, otlp_endpoint: str | None) -> bool:
    """Export this process's spans, as ``service``, to ``otlp_endpoint``; no endpoint, no tracing.

    Idempotent: the first configuration of a process holds. Returns whether tracing is on.
    """
    if not otlp_endpoint:
        return tracing_enabled()
    if _active is not None:
        return True
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=traces_url(otlp_endpoint), timeout=_EXPORT_TIMEOUT_SECONDS)
    provider.add_span_processor(BatchSpanProcessor(WithoutErrorText(exporter)))
    trace.set_tracer_provider(provider)
    _enable(provider, owned=True)
    log.info("tracing on", extra={"service_name": service, "endpoint": traces_url(otlp_endpoint)})
    return True


def enable_tracing(provider: trace.TracerProvider) -> None:
    """Record spans with ``provider`` (a test's in-memory one, say), Redis and SQL included."""
    if _active is not None:
        disable_tracing()
    _enable(provider, owned=False)


def disable_tracing() -> None:
    """Stop recording spans here; a provider this module built is flushed and shut down."""
    global _active
    active, _active = _active, None
    if active is None:
        return
    for instrumentor in _client_instrumentors():
        instrumentor.uninstrument()
    if active.owned and hasattr(active.provider, "shutdown"):
        active.provider.force_flush(_FLUSH_MILLIS)  # type: ignore[attr-defined]
        active.provider.shutdown()


def _enable(provider: trace.TracerProvider, *, owned: bool) -> None:
    global _active
    # Without their arguments: a command or statement says what ran, never with what data.
    for instrumentor in _client_instrumentors():
        instrumentor.instrument(
            tracer_provider=provider, capture_parameters=False, skip_dep_check=True
        )
    _active = _Tracing(provider, provider.get_tracer(TRACER_NAME), owned)


# The database clients a service may use, and their instrumentations. A service has only the
# clients it needs (its image installs nothing else), so each is instrumented only if present.
_CLIENT_INSTRUMENTATIONS: Final = (
    ("psycopg", "opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    ("redis", "opentelemetry.instrumentation.redis", "RedisInstrumentor"),
)


def _client_instrumentors() -> list[Any]:
    found = []
    for client, module, name in _CLIENT_INSTRUMENTATIONS:
        if importlib.util.find_spec(client) is not None:
            found.append(getattr(importlib.import_module(module), name)())
    return found


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's trace and span id (hex), for log lines; None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class WithoutErrorText(SpanExporter):
    """Exports spans with every error's text removed, keeping its type.

    An error's message may quote what it failed on (a database error a row of a turn, a
    validation error a body), and instrumentations record messages on their spans.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans``, error texts removed."""
        return self._exporter.export([without_error_text(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._exporter.force_flush(timeout_millis)


_KEPT_EXCEPTION_ATTRIBUTES: Final = frozenset({"exception.type", "exception.escaped"})


def without_error_text(span: ReadableSpan) -> ReadableSpan:
    """``span`` with exception events reduced to their type and the status to its error type."""
    description = span.status.description
    if not description and not any(event.name == "exception" for event in span.events):
        return span
    events = [
        Event(
            event.name,
            {k: v for k, v in (event.attributes or {}).items() if k in _KEPT_EXCEPTION_ATTRIBUTES},
            event.timestamp,
        )
        if event.name == "exception"
        else event
        for event in span.events
    ]
    # The SDK describes an error as "Type: message"; keep the type.
    status = Status(span.status.status_code, description.split(":", 1)[0] if description else None)
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
