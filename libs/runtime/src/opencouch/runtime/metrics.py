"""Every metric the product exports, in Prometheus form, and the small server NATS services use.

Metrics live in the process's default registry: an HTTP service serves them at ``/metrics`` on
its own port (``opencouch.runtime.http``), a NATS service on a port of its own
(``serve_metrics``). Labels are low-cardinality names, codes and outcomes: never an id, and
never anything a user said.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Latency buckets from a fast Redis hit to a slow finalization (seconds).
_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# What a person waits for in a voice session, from a quick reply to a stalled connection.
_VOICE_BUCKETS: Final = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 60.0)

# -- requests ---------------------------------------------------------------------------------

HTTP_REQUEST_SECONDS: Final = Histogram(
    "opencouch_http_request_duration_seconds",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
NATS_REQUEST_SECONDS: Final = Histogram(
    "opencouch_nats_request_duration_seconds",
    "NATS requests served, by service, endpoint and outcome (ok or the error code).",
    ["service", "endpoint", "outcome"],
    buckets=_LATENCY_BUCKETS,
)

# -- tools, turns, sessions -------------------------------------------------------------------

TOOL_CALL_SECONDS: Final = Histogram(
    "opencouch_tool_call_duration_seconds",
    "Tool calls the gateway forwarded, by tool and outcome (ok, refused, failed, timeout, "
    "unavailable, or dropped: a pure tool asked during its claim, for a call then refused).",
    ["tool", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
TOOL_CALLS_ASKED_AGAIN: Final = Counter(
    "opencouch_tool_calls_asked_again_total",
    "Pure tools' calls the gateway asked again, by tool: still waiting a check after they were "
    "sent, on an owner that runs (the replica holding them was most likely killed).",
    ["tool"],
)
TURNS_RECORDED: Final = Counter(
    "opencouch_turns_recorded_total",
    "Turns the gateway acknowledged for the first time, by memory mode and route.",
    ["mode", "route"],
)
VOICE_SESSIONS_STARTED: Final = Counter(
    "opencouch_voice_sessions_started_total",
    "Voice sessions this gateway started, by memory mode.",
    ["mode"],
)
VOICE_SESSIONS_ABANDONED: Final = Counter(
    "opencouch_voice_sessions_abandoned_total",
    "Voice sessions nobody ended (a tab closed) that this gateway ended once no token could: "
    "kind session (ended as /end with no body), or continued (a dropped call's conversation "
    "that never went on, finalized).",
    ["kind"],
)
VOICE_SESSIONS_ACTIVE: Final = Gauge(
    "opencouch_voice_sessions_active",
    "Live voice sessions across every gateway (read from Redis; take the max over replicas).",
)
BROWSER_LATENCY_SECONDS: Final = Histogram(
    "opencouch_browser_latency_seconds",
    "Latency marks the browser measured: session_minted, connected, first_audio, tool_round_trip.",
    ["mark"],
    buckets=_VOICE_BUCKETS,
)
CRISIS_TURNS: Final = Counter(
    "opencouch_crisis_turns_total",
    "User turns the crisis screen classified, by level and memory mode.",
    ["level", "mode"],
)

# -- events and finalization ------------------------------------------------------------------

JETSTREAM_PENDING: Final = Gauge(
    "opencouch_jetstream_consumer_pending",
    "Events waiting for a consumer (its lag, in events), read at each delivery and every few "
    "seconds from the server.",
    ["consumer"],
)
JETSTREAM_EVENT_AGE_SECONDS: Final = Histogram(
    "opencouch_jetstream_event_age_seconds",
    "From an event's publish to the start of its handling (the consumer's lag, in time).",
    ["consumer"],
    buckets=_LATENCY_BUCKETS,
)
JETSTREAM_REDELIVERIES: Final = Counter(
    "opencouch_jetstream_redeliveries_total",
    "Deliveries of an event that an earlier delivery did not settle.",
    ["consumer"],
)
JETSTREAM_EVENTS_HANDLED: Final = Counter(
    "opencouch_jetstream_events_handled_total",
    "Events handed to a consumer's handler, by outcome (ok, retry_later, failed).",
    ["consumer", "outcome"],
)
FINALIZATION_SECONDS: Final = Histogram(
    "opencouch_finalization_duration_seconds",
    "From a session's end to its final finalization status, by outcome (completed, failed).",
    ["outcome"],
    buckets=_VOICE_BUCKETS,
)


def record_finalization(outcome: str, ended_at: datetime) -> None:
    """A session reached its final status ``outcome`` (``completed``/``failed``); it ended at
    ``ended_at``."""
    elapsed = (datetime.now(UTC) - ended_at).total_seconds()
    FINALIZATION_SECONDS.labels(outcome).observe(max(elapsed, 0.0))


def record_crisis_turn(level: int, mode: str) -> None:
    """The crisis screen gave a user turn ``level`` in a ``mode`` conversation."""
    CRISIS_TURNS.labels(str(level), mode).inc()


# -- the NATS services' own /metrics ----------------------------------------------------------


@contextmanager
def serve_metrics(host: str, port: int) -> Iterator[int | None]:
    """Serve ``/metrics`` on ``host:port`` while the block runs; yields the port, or None.

    A port already taken is logged, not fatal: a service without metrics still serves calls.
    """
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as error:
        log.error(
            "metrics not served: port unavailable",
            extra={"host": host, "port": port, "error": type(error).__name__},
        )
        yield None
        return
    bound = int(server.server_address[1])
    log.info("metrics served", extra={"host": host, "port": bound})
    try:
        yield bound
    finally:
        _stop(server, thread)


def _stop(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
