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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
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
    starts_traces: bool = True


_active: _Tracing | None = None


def tracing_enabled() -> bool:
    """Whether this process records spans."""
    return _active is not None


def starts_traces() -> bool:
    """Whether this process may start a trace of its own (an edge, or a configured sampler);
    if not, what reaches it without a recorded trace context is not traced here at all."""
    return _active is not None and _active.starts_traces


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


def configure_tracing(service: str, otlp_endpoint: str | None, *, edge: bool = False) -> bool:
    """Export this process's spans, as ``service``, to ``otlp_endpoint``; no endpoint, no tracing.

    ``edge`` services (the HTTP ones) decide which traces are recorded; the others only continue
    the traces that reach them recorded. Idempotent: the first configuration of a process holds.
    Returns whether tracing is on.
    """
    if not otlp_endpoint:
        return tracing_enabled()
    if _active is not None:
        return True
    # Imported only for a process that exports: the exporter brings protobuf and an HTTP client,
    # about 80 ms of a start that has no use for them with tracing off.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=_default_sampler(edge)
    )
    exporter = OTLPSpanExporter(endpoint=traces_url(otlp_endpoint), timeout=_EXPORT_TIMEOUT_SECONDS)
    provider.add_span_processor(BatchSpanProcessor(WithoutErrorText(exporter)))
    trace.set_tracer_provider(provider)
    _enable(provider, owned=True, starts_traces=edge or bool(os.environ.get("OTEL_TRACES_SAMPLER")))
    log.info("tracing on", extra={"service_name": service, "endpoint": traces_url(otlp_endpoint)})
    return True


DEFAULT_SAMPLE_RATIO: Final = 0.1
"""The share of traces recorded unless ``OTEL_TRACES_SAMPLER`` says otherwise."""


def _default_sampler(edge: bool) -> Sampler | None:
    """At the edge, one trace in ten, decided by trace id (whatever the caller's flag says);
    elsewhere, follow the caller, and never start a trace alone.

    A recorded trace costs each service about 0.1 ms of CPU per span, which recording every tool
    call would add to every tool call. An unrecorded one carries no context onward, so services
    behind the edge do no tracing work for it. ``OTEL_TRACES_SAMPLER=always_on`` records every
    trace; any standard sampler setting is the SDK's to read.
    """
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return TraceIdRatioBased(DEFAULT_SAMPLE_RATIO) if edge else ParentBased(ALWAYS_OFF)


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


def _enable(provider: trace.TracerProvider, *, owned: bool, starts_traces: bool = True) -> None:
    global _active
    # Without their arguments: a command or statement says what ran, never with what data.
    for instrumentor in _client_instrumentors():
        instrumentor.instrument(
            tracer_provider=provider, capture_parameters=False, skip_dep_check=True
        )
    _active = _Tracing(provider, provider.get_tracer(TRACER_NAME), owned, starts_traces)


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
