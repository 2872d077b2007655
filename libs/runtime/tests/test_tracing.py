"""One trace across NATS request/reply, JetStream and SQL, on real NATS and Postgres.

Tracing is turned on in this process for each test (``recorded_spans``); the spans are read
from memory. The same spans leave a service process over OTLP (tests/test_observability_e2e.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.jetstream import consume_events, ensure_events_stream, publish_event
from opencouch.runtime.messaging import request
from opencouch.runtime.postgres import DictPool, connection_pool
from opencouch.runtime.tracing import tracer, without_error_text

PRIVATE_WORDS = "my sister Marguerite lives in Lyon"


class Lookup(BaseModel):
    word: str
    fail: bool = False


class Found(BaseModel):
    length: int


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def pool(recorded_spans: InMemorySpanExporter, database_url: str) -> AsyncIterator[DictPool]:
    # Opened once tracing is on, so its connections are traced.
    async with connection_pool(database_url, max_size=2) as opened:
        yield opened


def in_trace(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.context and s.context.trace_id == trace_id]


def parent_of(span: ReadableSpan) -> int | None:
    return int(span.parent.span_id) if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def only(spans: list[ReadableSpan], kind: SpanKind, name_start: str) -> ReadableSpan:
    found = [s for s in spans if s.kind is kind and s.name.startswith(name_start)]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def no_private_words(spans: list[ReadableSpan]) -> None:
    for span in spans:
        shown = [span.name, *map(str, (span.attributes or {}).values())]
        shown += [str(event.attributes) for event in span.events]
        assert not any(PRIVATE_WORDS in text for text in shown), span.name


async def test_a_request_continues_the_callers_trace_into_the_service_and_its_sql(
    recorded_spans: InMemorySpanExporter, nc: NatsClient, pool: DictPool
) -> None:
    subject = f"test.lookup.{uuid.uuid4().hex[:8]}"

    async def lookup(asked: Lookup) -> Found:
        if asked.fail:
            raise ServiceError(ErrorCode.NOT_FOUND, "no such word")
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT length(%s) AS n", (asked.word,))).fetchone()
        assert row is not None
        return Found(length=row["n"])

    service = await start_service(
        nc,
        name="opencouch-test",
        version="0.0.0",
        description="test",
        endpoints=[Endpoint("lookup", subject, Lookup, lookup)],
    )
    try:
        with tracer().start_as_current_span("tool call") as root:
            found = await request(nc, subject, Lookup(word=PRIVATE_WORDS), Found, timeout=10)
            with pytest.raises(ServiceError) as refused:
                await request(nc, subject, Lookup(word="x", fail=True), Found, timeout=10)
    finally:
        await service.stop()
    assert found.length == len(PRIVATE_WORDS)
    assert refused.value.code is ErrorCode.NOT_FOUND

    spans = in_trace(recorded_spans, root.get_span_context().trace_id)
    requests = [s for s in spans if s.kind is SpanKind.CLIENT and s.name == f"request {subject}"]
    served = [
        s for s in spans if s.kind is SpanKind.SERVER and s.name == "serve opencouch-test.lookup"
    ]
    assert len(requests) == 2
    assert len(served) == 2
    first_request, second_request = sorted(requests, key=lambda s: s.start_time or 0)
    first_served, second_served = sorted(served, key=lambda s: s.start_time or 0)
    sql = only(spans, SpanKind.CLIENT, "SELECT")

    # Parent links: caller -> NATS request -> the service serving it -> its SQL.
    assert parent_of(first_request) == root.get_span_context().span_id
    assert parent_of(first_served) == span_id(first_request)
    assert parent_of(sql) == span_id(first_served)
    assert parent_of(second_served) == span_id(second_request)

    assert (first_request.attributes or {})["opencouch.outcome"] == "ok"
    assert (first_served.attributes or {})["messaging.destination.name"] == subject
    assert (second_request.attributes or {})["opencouch.outcome"] == "not_found"
    assert (second_served.attributes or {})["opencouch.outcome"] == "not_found"
    # A refusal is the caller's problem, not a fault of the service.
    assert second_served.status.status_code is StatusCode.UNSET
    assert "%s" in str((sql.attributes or {}).get("db.statement"))
    no_private_words(spans)


async def test_a_turn_is_one_trace_from_publish_through_the_consumer_into_its_sql(
    recorded_spans: InMemorySpanExporter, nc: NatsClient, pool: DictPool
) -> None:
    js = await ensure_events_stream(nc)
    event = SessionEnded(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id="thread-trace",
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=1,
        ended_at=datetime.now(UTC),
    )
    stop = asyncio.Event()
    handled_in: list[int] = []

    async def handle(seen: SessionEnded) -> None:
        if seen.session_id != event.session_id:  # earlier tests' events share the stream
            return
        async with pool.connection() as conn:
            await conn.execute("SELECT %s::text AS session_id", (seen.session_id,))
        handled_in.append(1)
        stop.set()

    with tracer().start_as_current_span("turn") as root:
        await publish_event(js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
    consumer = asyncio.create_task(
        consume_events(
            js,
            subject=subjects.SESSION_ENDED,
            durable=f"test-trace-{uuid.uuid4().hex[:8]}",
            event_model=SessionEnded,
            handle=handle,
            stop=stop,
        )
    )
    await asyncio.wait_for(consumer, 60)
    assert handled_in == [1]

    spans = in_trace(recorded_spans, root.get_span_context().trace_id)
    published = only(spans, SpanKind.PRODUCER, "publish SessionEnded")
    processed = only(spans, SpanKind.CONSUMER, "process test-trace-")
    sql = only(spans, SpanKind.CLIENT, "SELECT")
    assert parent_of(published) == root.get_span_context().span_id
    assert parent_of(processed) == span_id(published)
    assert parent_of(sql) == span_id(processed)
    assert (processed.attributes or {})["opencouch.outcome"] == "ok"
    assert (processed.attributes or {})["opencouch.delivery_attempt"] == 1


async def test_trace_context_travels_in_headers_only_while_tracing_is_on(
    nats_url: str, nc: NatsClient
) -> None:
    subject = f"test.headers.{uuid.uuid4().hex[:8]}"
    seen: list[dict[str, str] | None] = []

    async def answer(msg: Msg) -> None:
        seen.append(msg.headers)
        await msg.respond(Found(length=0).model_dump_json().encode())

    await nc.subscribe(subject, cb=answer)
    # Tracing is off here: no recorded_spans fixture in this test.
    await request(nc, subject, Lookup(word="a"), Found, timeout=10)
    assert seen == [None]


async def test_exported_spans_keep_an_errors_type_but_not_the_data_its_message_quotes(
    recorded_spans: InMemorySpanExporter, pool: DictPool
) -> None:
    with tracer().start_as_current_span("bad input") as root:
        async with pool.connection() as conn:
            with pytest.raises(psycopg.errors.InvalidTextRepresentation):
                await conn.execute("SELECT (%s)::int", (PRIVATE_WORDS,))
    failed = only(
        in_trace(recorded_spans, root.get_span_context().trace_id), SpanKind.CLIENT, "SELECT"
    )
    # What the SQL instrumentation records: Postgres quotes the value in its message.
    assert PRIVATE_WORDS in str([e.attributes for e in failed.events])

    exported = without_error_text(failed)
    with pytest.raises(AssertionError):
        no_private_words([failed])
    no_private_words([exported])
    assert PRIVATE_WORDS not in str(exported.status.description)
    assert exported.status.status_code is StatusCode.ERROR
    kept = next(e.attributes or {} for e in exported.events if e.name == "exception")
    assert str(kept["exception.type"]).endswith("InvalidTextRepresentation")


def test_a_process_with_tracing_off_does_not_load_the_exporter() -> None:
    """The OTLP exporter (protobuf and an HTTP client) is loaded by the process that exports,
    not by every service at its start."""
    check = (
        "import importlib, pkgutil, sys\n"
        "import opencouch.runtime as runtime\n"
        "for module in pkgutil.iter_modules(runtime.__path__):\n"
        "    importlib.import_module(f'opencouch.runtime.{module.name}')\n"
        "from opencouch.runtime.tracing import configure_tracing\n"
        "assert not configure_tracing('checked', None)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.exporter')))\n"
        "configure_tracing('checked', 'http://127.0.0.1:9')\n"
        "print('opentelemetry.exporter.otlp.proto.http.trace_exporter' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["[]", "True"]
