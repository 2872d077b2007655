"""The events consumer on a real JetStream: ack, retry later, give up, and skip poison."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import nats

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.runtime.jetstream import (
    RetryLater,
    consume_events,
    ensure_events_stream,
    publish_event,
)


def ended(expected: int) -> SessionEnded:
    return SessionEnded(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id="thread-1",
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=expected,
        ended_at=datetime.now(UTC),
    )


async def test_events_are_retried_until_ready_given_up_after_max_deliver_and_poison_is_skipped(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    durable = f"test-{uuid.uuid4().hex[:8]}"
    ready_after_two, never_ready = ended(2), ended(99)
    attempts: dict[str, int] = {}
    handled: list[str] = []
    given_up: list[str] = []
    stop = asyncio.Event()

    ours = {ready_after_two.session_id, never_ready.session_id}

    async def handle(event: SessionEnded) -> None:
        if event.session_id not in ours:  # earlier tests' events share the stream
            return
        attempts[event.session_id] = attempts.get(event.session_id, 0) + 1
        if attempts[event.session_id] < min(event.expected_turn_count, 3) + 1:
            raise RetryLater("not yet", delay=0.05)
        handled.append(event.session_id)

    async def give_up(event: SessionEnded) -> None:
        given_up.append(event.session_id)
        if len(handled) == 1:
            stop.set()

    # A message that is no SessionEnded must not block the ones behind it.
    await js.publish(subjects.SESSION_ENDED, b'{"not": "an event"}')
    for event in (ready_after_two, never_ready):
        await publish_event(js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
    # A duplicate publish inside the window is stored once.
    await publish_event(
        js, subjects.SESSION_ENDED, ready_after_two, dedup_id=ready_after_two.dedup_id
    )

    consumer = asyncio.create_task(
        consume_events(
            js,
            subject=subjects.SESSION_ENDED,
            durable=durable,
            event_model=SessionEnded,
            handle=handle,
            stop=stop,
            on_give_up=give_up,
            max_deliver=3,
        )
    )
    try:
        await asyncio.wait_for(stop.wait(), timeout=30)
    finally:
        stop.set()
        await consumer
        await js.delete_consumer(subjects.EVENTS_STREAM, durable)
        await nc.close()

    assert handled == [ready_after_two.session_id]
    assert attempts[ready_after_two.session_id] == 3
    assert given_up == [never_ready.session_id]
    assert attempts[never_ready.session_id] == 3
