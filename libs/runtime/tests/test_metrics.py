"""A NATS service's own /metrics, and what its endpoints and consumers record there."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
import uuid
from datetime import UTC, datetime

import nats
import pytest
from prometheus_client import REGISTRY

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.runtime import jetstream
from opencouch.runtime.jetstream import (
    RetryLater,
    consume_events,
    ensure_events_stream,
    publish_event,
)
from opencouch.runtime.metrics import serve_metrics
from opencouch.runtime.observation import requesting, serving


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def test_metrics_are_served_on_a_port_of_their_own_and_a_taken_port_is_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve_metrics("127.0.0.1", 0) as port:
        assert port is not None
        text = scrape(port)
        assert "# TYPE opencouch_jetstream_consumer_pending gauge" in text
        assert "# TYPE opencouch_nats_request_duration_seconds histogram" in text
        with caplog.at_level(logging.ERROR), serve_metrics("127.0.0.1", port) as second:
            assert second is None
        assert "metrics not served" in caplog.text
        assert scrape(port)  # the first server still serves


async def test_a_consumer_records_its_lag_redeliveries_and_outcomes(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    durable = f"test-metrics-{uuid.uuid4().hex[:8]}"
    event = SessionEnded(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id="thread-metrics",
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=0,
        ended_at=datetime.now(UTC),
    )
    stop = asyncio.Event()
    attempts = 0

    async def handle(seen: SessionEnded) -> None:
        nonlocal attempts
        if seen.session_id != event.session_id:
            return
        attempts += 1
        if attempts == 1:
            raise RetryLater("memory has not stored the turns yet", delay=0.05)
        stop.set()

    await publish_event(js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
    await asyncio.wait_for(
        consume_events(
            js,
            subject=subjects.SESSION_ENDED,
            durable=durable,
            event_model=SessionEnded,
            handle=handle,
            stop=stop,
        ),
        60,
    )
    await nc.close()
    assert attempts == 2
    assert sample("opencouch_jetstream_redeliveries_total", consumer=durable) >= 1
    assert sample("opencouch_jetstream_events_handled_total", consumer=durable, outcome="ok") >= 1
    assert (
        sample("opencouch_jetstream_events_handled_total", consumer=durable, outcome="retry_later")
        == 1
    )
    assert sample("opencouch_jetstream_event_age_seconds_count", consumer=durable) >= 1
    # Every earlier event of the shared stream was delivered first; ours was the last.
    assert sample("opencouch_jetstream_consumer_pending", consumer=durable) == 0


@pytest.mark.parametrize("traced", [False, True], ids=["tracing off", "tracing on"])
def test_a_served_request_is_timed_under_its_outcome_or_as_internal_if_it_raised(
    traced: bool, request: pytest.FixtureRequest
) -> None:
    spans = request.getfixturevalue("recorded_spans") if traced else None
    service = f"svc-{uuid.uuid4().hex[:8]}"
    name = "opencouch_nats_request_duration_seconds_count"

    with serving(service, "lookup", "test.lookup", None, 10) as served:
        served.outcome("ok")
    with pytest.raises(RuntimeError), serving(service, "lookup", "test.lookup", None, 10):
        raise RuntimeError("a bug")
    with serving(service, "lookup", "test.lookup", None, 10) as served:
        served.outcome("invalid_request")

    for result in ("ok", "internal", "invalid_request"):
        assert sample(name, service=service, endpoint="lookup", outcome=result) == 1
    assert sample("opencouch_nats_request_duration_seconds_sum", service=service,
                  endpoint="lookup", outcome="ok") > 0  # fmt: skip
    if spans is not None:
        served_spans = [
            s for s in spans.get_finished_spans() if s.name == f"serve {service}.lookup"
        ]
        assert [(s.attributes or {}).get("opencouch.outcome") for s in served_spans] == [
            "ok",
            None,
            "invalid_request",
        ]
    else:
        with requesting("test.lookup", 10) as sent:
            assert sent.headers is None
            assert not sent.span.is_recording()


async def test_a_stuck_consumers_lag_shows_the_events_piling_up(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lag was read only as a delivery started: while a handler was stuck, it stayed at its
    last value (0) however many events piled up, and the dashboards showed no lag."""
    monkeypatch.setattr(jetstream, "LAG_EVERY_SECONDS", 0.1)
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    tag = uuid.uuid4().hex[:8]
    subject, durable = f"{subjects.EVENTS_PREFIX}.lag{tag}", f"test-lag-{tag}"
    stop, holding, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stuck(_: SessionEnded) -> None:
        holding.set()
        await release.wait()

    event = SessionEnded(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id="thread-lag",
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=0,
        ended_at=datetime.now(UTC),
    ).model_dump_json()
    consuming = asyncio.create_task(
        consume_events(
            js, subject=subject, durable=durable, event_model=SessionEnded, handle=stuck, stop=stop
        )
    )
    try:
        await js.publish(subject, event.encode())
        await asyncio.wait_for(holding.wait(), 10)
        for _ in range(50):
            await js.publish(subject, event.encode())
        for _ in range(100):
            if sample("opencouch_jetstream_consumer_pending", consumer=durable) >= 50:
                break
            await asyncio.sleep(0.1)
        assert sample("opencouch_jetstream_consumer_pending", consumer=durable) >= 50
    finally:
        stop.set()
        release.set()
        await asyncio.wait_for(consuming, 30)
        await js.delete_consumer(subjects.EVENTS_STREAM, durable)
        await nc.close()
