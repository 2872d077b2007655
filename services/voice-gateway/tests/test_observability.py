"""The gateway's metrics and traces, in process, against real NATS, Redis and the emulator.

Owners are the plugin's fakes (a thread of their own, same process), so one in-memory span
exporter sees the gateway's and the owner's spans. The real services, their SQL and the
OTLP export are covered in tests/test_observability_e2e.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, generate_latest

from opencouch.voice_gateway.app import count_live_sessions
from opencouch.voice_gateway.testing import (
    API,
    UNAVAILABLE_TOOL,
    GatewayFactory,
    bearer,
    open_session,
    slow_owner,
    unique,
)
from opencouch.voice_gateway.voice_sessions import LIVE_SESSIONS_KEY


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def tool_call(name: str = "wait_for_user") -> dict[str, Any]:
    return {"tool_name": name, "call_id": unique("call"), "arguments": {}}


def turn(client_turn_id: str, **latency: Any) -> dict[str, Any]:
    return {
        "client_turn_id": client_turn_id,
        "user_text": "I had a long day.",
        "assistant_text": "Tell me about it.",
        "latency": latency,
    }


def marks() -> dict[str, float]:
    names = ("session_minted", "connected", "first_audio", "tool_round_trip")
    return {name: sample("opencouch_browser_latency_seconds_count", mark=name) for name in names}


def test_tool_latency_turns_and_latency_marks_are_counted_once_each(
    gateway: TestClient, redis_url: str
) -> None:
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    auth = bearer(session)
    tools_before = sample(
        "opencouch_tool_call_duration_seconds_count", tool="wait_for_user", outcome="ok"
    )
    turns_before = sample("opencouch_turns_recorded_total", mode="persistent", route="therapeutic")
    marks_before = marks()
    route_before = sample(
        "opencouch_http_request_duration_seconds_count",
        route=f"{API}/tools",
        method="POST",
        status="200",
    )

    assert gateway.post(f"{API}/tools", json=tool_call(), headers=auth).json()["ok"] is True
    session_marks = {"session_minted_ms": 420.0, "connected_ms": 910.0}
    first = turn("turn-1", **session_marks, first_audio_ms=650.0, tool_round_trips_ms=[80, 95])
    second = turn("turn-2", **session_marks, first_audio_ms=700.0)
    for body in (first, first, second):  # the browser retries turn-1 once
        reply = gateway.post(f"{API}/turn", json=body, headers=auth)
        assert reply.status_code == 200, reply.text

    assert (
        sample("opencouch_tool_call_duration_seconds_count", tool="wait_for_user", outcome="ok")
        == tools_before + 1
    )
    assert (
        sample("opencouch_turns_recorded_total", mode="persistent", route="therapeutic")
        == turns_before + 2
    )
    counted = {name: count - marks_before[name] for name, count in marks().items()}
    assert counted == {"session_minted": 1, "connected": 1, "first_audio": 2, "tool_round_trip": 2}
    assert (
        sample(
            "opencouch_http_request_duration_seconds_count",
            route=f"{API}/tools",
            method="POST",
            status="200",
        )
        == route_before + 1
    )

    text = generate_latest().decode()
    for name in (
        "opencouch_tool_call_duration_seconds_bucket",
        "opencouch_turns_recorded_total",
        "opencouch_browser_latency_seconds_bucket",
        "opencouch_voice_sessions_active",
        "opencouch_voice_sessions_started_total",
        "opencouch_http_request_duration_seconds_bucket",
    ):
        assert name in text, name
    # Routes are templates: a session id never becomes a label.
    assert session["session_id"] not in text


@pytest.mark.parametrize(
    ("name", "outcome"),
    [(UNAVAILABLE_TOOL, "unavailable"), ("confirm_memory_deletion", "failed")],
)
def test_an_owner_that_cannot_run_a_tool_now_is_counted_unavailable_not_failed(
    gateway: TestClient, name: str, outcome: str
) -> None:
    """Its store is down: an outage to watch for, not a bug in the tool."""
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    before = sample("opencouch_tool_call_duration_seconds_count", tool=name, outcome=outcome)
    reply = gateway.post(f"{API}/tools", json=tool_call(name), headers=bearer(session))
    assert reply.status_code == 200, reply.text
    assert reply.json()["ok"] is False
    after = sample("opencouch_tool_call_duration_seconds_count", tool=name, outcome=outcome)
    assert after == before + 1


def test_the_active_sessions_gauge_counts_live_sessions_in_redis(
    gateway: TestClient, redis_url: str
) -> None:
    session = open_session(gateway)
    live = redis.Redis.from_url(redis_url)
    assert live.zscore(LIVE_SESSIONS_KEY, session["session_id"]) is not None
    gateway.portal.call(count_live_sessions, gateway.app.state.gateway)  # type: ignore[union-attr, attr-defined]
    assert sample("opencouch_voice_sessions_active") >= 1
    ended = gateway.post(f"{API}/end", json={}, headers=bearer(session))
    assert ended.status_code == 200, ended.text
    assert live.zscore(LIVE_SESSIONS_KEY, session["session_id"]) is None


def test_the_api_port_serves_no_metrics(gateway: TestClient) -> None:
    """What the product counts (crisis screens, sessions, failures) is for the operator's
    Prometheus, on a port of its own; whoever reaches the API gets the house 404."""
    reply = gateway.get("/metrics")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert "opencouch_" not in reply.text


def parent_of(span: ReadableSpan) -> int | None:
    return int(span.parent.span_id) if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def spans_of(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.context and s.context.trace_id == trace_id
    ]


def test_a_tool_call_continues_the_pages_traceparent_through_nats_into_the_owner(
    recorded_spans: InMemorySpanExporter, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()  # made now: tracing is on, so its app is instrumented
    session = open_session(gateway)
    trace_id, parent_id = uuid.uuid4().int, uuid.uuid4().int >> 64
    traceparent = f"00-{trace_id:032x}-{parent_id:016x}-01"

    reply = gateway.post(
        f"{API}/tools",
        json=tool_call("show_memory_status"),
        headers={**bearer(session), "traceparent": traceparent},
    )
    assert reply.status_code == 200, reply.text

    spans = spans_of(recorded_spans, trace_id)
    server = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.endswith("/tools"))
    assert parent_of(server) == parent_id
    assert (server.attributes or {})["opencouch.tool.name"] == "show_memory_status"
    assert (server.attributes or {})["opencouch.tool.outcome"] == "ok"
    sent = next(s for s in spans if s.kind is SpanKind.CLIENT and s.name.startswith("request "))
    served = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("serve "))
    assert parent_of(sent) == span_id(server)
    assert parent_of(served) == span_id(sent)
    assert served.name == "serve opencouch-memory.show_memory_status"
    # The call id claim and the stored output are Redis commands inside the request's trace.
    redis_spans = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    assert redis_spans
    statements = [str((s.attributes or {}).get("db.statement")) for s in redis_spans]
    assert not [s for s in statements if session["session_id"] in s], "commands carry no keys"


def test_a_pure_tool_asked_during_its_claim_stays_in_the_requests_trace(
    recorded_spans: InMemorySpanExporter, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    session = open_session(gateway)
    trace_id, parent_id = uuid.uuid4().int, uuid.uuid4().int >> 64
    traceparent = f"00-{trace_id:032x}-{parent_id:016x}-01"
    reply = gateway.post(
        f"{API}/tools", json=tool_call(), headers={**bearer(session), "traceparent": traceparent}
    )
    assert reply.json()["ok"] is True
    spans = spans_of(recorded_spans, trace_id)
    server = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.endswith("/tools"))
    assert (server.attributes or {})["opencouch.tool.outcome"] == "ok"
    sent = next(s for s in spans if s.kind is SpanKind.CLIENT and s.name.startswith("request "))
    assert parent_of(sent) == span_id(server)


def test_an_early_answer_still_on_its_way_when_the_call_is_refused_is_dropped(
    recorded_spans: InMemorySpanExporter,
    make_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended = open_session(make_gateway())
    with slow_owner("wait_for_user", 1.0) as slow_nats:
        slow = make_gateway(nats_url=slow_nats)
        assert slow.post(f"{API}/end", json={}, headers=bearer(ended)).status_code in (200, 202)

        def dropped() -> float:
            return sample(
                "opencouch_tool_call_duration_seconds_count",
                tool="wait_for_user",
                outcome="dropped",
            )

        before = dropped()
        with caplog.at_level(logging.WARNING):
            late = slow.post(
                f"{API}/tools",
                json=tool_call(),
                headers={**bearer(ended), "traceparent": f"00-{uuid.uuid4().hex}-{'1' * 16}-01"},
            )
            assert late.status_code == 409
            deadline = time.monotonic() + 5
            while dropped() == before and time.monotonic() < deadline:
                time.sleep(0.01)
        # Counted as dropped, and nothing is said about the request's span, which has ended.
        assert dropped() == before + 1
        assert not [r for r in caplog.records if "ended span" in r.getMessage()]


def test_a_turn_publishes_its_event_inside_the_requests_trace(
    recorded_spans: InMemorySpanExporter, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    trace_id = uuid.uuid4().int
    traceparent = f"00-{trace_id:032x}-{uuid.uuid4().int >> 64:016x}-01"
    reply = gateway.post(
        f"{API}/turn",
        json=turn(unique("turn")),
        headers={**bearer(session), "traceparent": traceparent},
    )
    assert reply.status_code == 200, reply.text
    spans = spans_of(recorded_spans, trace_id)
    server = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.endswith("/turn"))
    published = next(s for s in spans if s.kind is SpanKind.PRODUCER)
    assert published.name == "publish TurnRecorded"
    assert parent_of(published) == span_id(server)
