"""What each message crossing NATS records: a span continuing the sender's trace, and metrics.

The W3C trace context (``traceparent``, ``tracestate``) travels in the message headers, for
request/reply and for JetStream alike, so a receiver continues the sender's trace. While tracing
is off nothing is added to a message. Metrics are recorded either way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Final, TypeVar

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Histogram

from opencouch.runtime import metrics
from opencouch.runtime.tracing import starts_traces, tracer, tracing_enabled

EventT = TypeVar("EventT")

_SYSTEM: Final = "nats"
# Only the W3C trace context travels (no baggage): one propagator, no composite to walk.
_PROPAGATOR: Final = TraceContextTextMapPropagator()
# Codes that mean the serving side failed, rather than refused the caller's request.
_SERVER_FAULTS: Final = frozenset({"internal", "service_unavailable", "service_timeout"})


class MessageSpan:
    """The span of one message: its headers to send, and how it went."""

    def __init__(self, span: trace.Span, headers: dict[str, str] | None) -> None:
        self.span = span
        self.headers = headers
        """Headers to send with the message (trace context added), or None when there are none."""

    def outcome(self, outcome: str) -> None:
        """Record ``ok`` or an error code; a server-side fault marks the span as an error."""
        if not self.span.is_recording():
            return
        self.span.set_attribute("opencouch.outcome", outcome)
        if outcome in _SERVER_FAULTS:
            self.span.set_status(Status(StatusCode.ERROR, outcome))


def with_trace_context(headers: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``headers`` plus the current trace context, when the current trace is recorded.

    An unrecorded trace travels no further: a receiver never starts a trace of its own (see
    ``tracing``), so it does no tracing work for it at all.
    """
    if not tracing_enabled() or not trace.get_current_span().is_recording():
        return dict(headers) if headers is not None else None
    carrier = dict(headers or {})
    _PROPAGATOR.inject(carrier)
    return carrier or None


def describe_current_span(attributes: Mapping[str, str | int]) -> None:
    """Add ``attributes`` (ids, names, outcomes: never content) to the span in progress."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def requesting(subject: str, size: int) -> AbstractContextManager[MessageSpan]:
    """The client side of a NATS request: a span, and the headers that carry it."""
    if not tracing_enabled():  # nothing to record: no span, no headers, no generator to run
        return _UNTRACED_REQUEST
    return _traced_request(subject, size)


@contextmanager
def _traced_request(subject: str, size: int) -> Iterator[MessageSpan]:
    with _span(f"request {subject}", SpanKind.CLIENT, _attributes(subject, size)) as span:
        yield MessageSpan(span, with_trace_context())


def serving(
    service: str, endpoint: str, subject: str, headers: Mapping[str, str] | None, size: int
) -> AbstractContextManager[MessageSpan]:
    """The serving side of a NATS request: continues the caller's trace, times the request."""
    if not tracing_enabled():  # timed only: a plain object, no span's nested context managers
        return _Served(service, endpoint)
    return _traced_serving(service, endpoint, subject, headers, size)


@contextmanager
def _traced_serving(
    service: str, endpoint: str, subject: str, headers: Mapping[str, str] | None, size: int
) -> Iterator[MessageSpan]:
    with (
        _Served(service, endpoint) as served,
        _traced_if_continued(headers),
        _span(
            f"serve {service}.{endpoint}",
            SpanKind.SERVER,
            _attributes(subject, size),
            parent=headers,
        ) as span,
    ):
        served.span = span
        yield served


@functools.cache
def _nats_request_seconds(service: str, endpoint: str, result: str) -> Histogram:
    """The histogram child of one label set (labels() takes a lock and checks on every call)."""
    return metrics.NATS_REQUEST_SECONDS.labels(service, endpoint, result)


class _Served(MessageSpan):
    """A request being served: timed from its start to its end, under the outcome it had
    (``internal`` unless one was recorded)."""

    def __init__(self, service: str, endpoint: str) -> None:
        super().__init__(trace.INVALID_SPAN, None)
        self.result = "internal"
        self._labels = (service, endpoint)
        self._started = time.perf_counter()

    def outcome(self, outcome: str) -> None:
        self.result = outcome
        super().outcome(outcome)

    def __enter__(self) -> _Served:
        return self

    def __exit__(self, *_: object) -> None:
        service, endpoint = self._labels
        _nats_request_seconds(service, endpoint, self.result).observe(
            time.perf_counter() - self._started
        )


_UNTRACED_REQUEST: Final = nullcontext(MessageSpan(trace.INVALID_SPAN, None))
"""A request while tracing is off: no span to end, no headers to send (shared: it keeps no
state, and recording an outcome on a span that does not record does nothing)."""


@contextmanager
def publishing(
    subject: str, event_type: str, headers: Mapping[str, str], size: int
) -> Iterator[dict[str, str]]:
    """A JetStream publish: a producer span; yields ``headers`` with its trace context."""
    attributes = _attributes(subject, size)
    attributes["opencouch.event"] = event_type
    with _span(f"publish {event_type}", SpanKind.PRODUCER, attributes):
        yield with_trace_context(headers) or dict(headers)


def observed_handler(
    msg: Msg, durable: str, handle: Callable[[EventT], Awaitable[None]]
) -> Callable[[EventT], Awaitable[None]]:
    """``handle`` for this delivery of ``msg``: run in a span continuing the publisher's trace,
    with the consumer's lag, redeliveries and outcome recorded.

    Called as a delivery starts, so the lag is measured before any handling.
    """
    attempt = 1
    try:
        meta = msg.metadata
    except Exception:  # not a JetStream delivery: nothing to measure
        meta = None
    if meta is not None:
        attempt = meta.num_delivered
        metrics.JETSTREAM_PENDING.labels(durable).set(meta.num_pending)
        if attempt > 1:
            metrics.JETSTREAM_REDELIVERIES.labels(durable).inc()
        else:
            age = (datetime.now(UTC) - meta.timestamp).total_seconds()
            metrics.JETSTREAM_EVENT_AGE_SECONDS.labels(durable).observe(max(age, 0.0))

    async def handle_observed(event: EventT) -> None:
        attributes = _attributes(msg.subject, len(msg.data))
        attributes["messaging.consumer.group.name"] = durable
        attributes["opencouch.delivery_attempt"] = attempt
        with (
            _traced_if_continued(msg.headers),
            _span(f"process {durable}", SpanKind.CONSUMER, attributes, parent=msg.headers) as span,
        ):
            outcome = "failed"
            try:
                await handle(event)
                outcome = "ok"
            except Exception as error:
                # The consumer's own "not yet" (jetstream.RetryLater) is a wait, not a failure.
                if type(error).__name__ == "RetryLater":
                    outcome = "retry_later"
                raise
            finally:
                metrics.JETSTREAM_EVENTS_HANDLED.labels(durable, outcome).inc()
                if span.is_recording():
                    span.set_attribute("opencouch.outcome", outcome)
                    if outcome == "failed":
                        span.set_status(Status(StatusCode.ERROR, outcome))

    return handle_observed


@contextmanager
def _traced_if_continued(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Behind the edge, a message with no recorded trace context is handled with every
    instrumentation suppressed: no span, no wrapper's work, nothing sent onward."""
    if not tracing_enabled() or starts_traces() or (headers and "traceparent" in headers):
        yield
        return
    with suppress_instrumentation():
        yield


def serving_http(
    method: str, headers: Mapping[str, str] | None
) -> AbstractContextManager[trace.Span]:
    """The server side of an HTTP request: a span continuing the caller's ``traceparent``,
    named ``method`` until the caller names it by route (``name_http_span``).

    Where the trace is decided: a request whose trace is not recorded runs with every
    instrumentation suppressed, so it costs no span, no wrapper's work and no headers.
    """
    if not tracing_enabled():  # nothing to record: no span, no generator to run
        return _UNTRACED_HTTP
    return _traced_http(method, headers)


_UNTRACED_HTTP: Final = nullcontext(trace.INVALID_SPAN)


@contextmanager
def _traced_http(method: str, headers: Mapping[str, str] | None) -> Iterator[trace.Span]:
    with _span(method, SpanKind.SERVER, {"http.request.method": method}, parent=headers) as span:
        if span.is_recording():
            yield span
            return
        with suppress_instrumentation():
            yield span


def name_http_span(span: trace.Span, method: str, route: str, status: int) -> None:
    """Name a request's span by its route template (the raw path holds ids); record its status."""
    if not span.is_recording():
        return
    span.update_name(f"{method} {route}")
    span.set_attributes({"http.route": route, "http.response.status_code": status})
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, str(status)))


def _attributes(subject: str, size: int) -> dict[str, str | int]:
    # Few attributes: each costs a few microseconds to record and export, on every message.
    # The span's kind and name already say the operation and the endpoint.
    return {
        "messaging.system": _SYSTEM,
        "messaging.destination.name": subject,
        "messaging.message.body.size": size,
    }


@contextmanager
def _span(
    name: str,
    kind: SpanKind,
    attributes: dict[str, str | int],
    *,
    parent: Mapping[str, str] | None = None,
) -> Iterator[trace.Span]:
    if not tracing_enabled() or not is_instrumentation_enabled():
        yield trace.INVALID_SPAN
        return
    context = _PROPAGATOR.extract(parent) if parent else None
    with tracer().start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        # An error's message may quote what it failed on: record its type only.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as error:
            span.set_attribute("error.type", type(error).__name__)
            if type(error).__name__ != "RetryLater":  # a consumer's "not yet" is no failure
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
