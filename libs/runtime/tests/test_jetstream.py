"""The events consumer on a real JetStream: ack, retry later, dead letters, replay, retention."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import nats
import nats.js.errors
from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.runtime.jetstream import (
    GiveUp,
    Redelivery,
    RetryLater,
    caught_up,
    consume_events,
    count_dead_letters,
    dead_letters,
    ensure_events_stream,
    forget_events,
    handled_through,
    publish_event,
    purge_acknowledged,
    replay_dead_letters,
)
from opencouch.testing.infra import PrivateNats


def own_subject(kind: str) -> str:
    """A subject no other test publishes on, so each test sees only its own events."""
    return f"{subjects.EVENTS_PREFIX}.test_{kind}.{uuid.uuid4().hex[:8]}"


def ended(expected: int, thread_id: str = "thread-1") -> SessionEnded:
    return SessionEnded(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id=thread_id,
        memory_mode=MemoryMode.PERSISTENT,
        expected_turn_count=expected,
        ended_at=datetime.now(UTC),
    )


@asynccontextmanager
async def consuming(
    js: JetStreamContext,
    handle: Callable[[SessionEnded], Awaitable[None]],
    *,
    subject: str,
    on_give_up: Callable[[SessionEnded], Awaitable[None]] | None = None,
    redelivery: Redelivery | None = None,
    batch: int = 16,
    replicas: int = 1,
) -> AsyncIterator[str]:
    """Consumers (``replicas`` of them) on their own durable for the block; yields its name."""
    durable = f"test-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            consume_events(
                js,
                subject=subject,
                durable=durable,
                event_model=SessionEnded,
                handle=handle,
                stop=stop,
                on_give_up=on_give_up,
                redelivery=redelivery,
                batch=batch,
            )
        )
        for _ in range(replicas)
    ]
    try:

        async def created() -> bool:
            try:
                await js.consumer_info(subjects.EVENTS_STREAM, durable)
            except nats.js.errors.NotFoundError:
                return False
            return True

        await eventually(created)
        yield durable
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await js.delete_consumer(subjects.EVENTS_STREAM, durable)


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    """Poll ``check`` (sync or async) until it holds; generous, never a timing assertion."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_retried_until_ready_and_what_never_succeeds_is_kept_as_a_dead_letter(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("retries")
    ready_after_two, never_ready = ended(2), ended(99)
    attempts: Counter[str] = Counter()
    handled: list[str] = []
    given_up: list[str] = []

    async def handle(event: SessionEnded) -> None:
        attempts[event.session_id] += 1
        if attempts[event.session_id] < min(event.expected_turn_count, 3) + 1:
            raise RetryLater("not yet", delay=0.05)
        handled.append(event.session_id)

    async def give_up(event: SessionEnded) -> None:
        given_up.append(event.session_id)

    # A message that is no SessionEnded must not block the ones behind it, nor be lost.
    poison = f'{{"not": "an event {uuid.uuid4().hex}"}}'.encode()
    await js.publish(subject, poison)
    for event in (ready_after_two, never_ready):
        await publish_event(js, subject, event, dedup_id=event.dedup_id)
    # A duplicate publish inside the window is stored once.
    await publish_event(js, subject, ready_after_two, dedup_id=ready_after_two.dedup_id)
    try:
        async with consuming(
            js,
            handle,
            subject=subject,
            on_give_up=give_up,
            redelivery=Redelivery(max_deliver=3, first_delay=0.05),
        ) as durable:

            async def both_dead() -> bool:
                return await count_dead_letters(js, durable) == 2 and bool(handled)

            await eventually(both_dead)
            letters = [letter async for letter in dead_letters(js, durable)]
    finally:
        await nc.close()

    assert handled == [ready_after_two.session_id]
    assert attempts[ready_after_two.session_id] == 3
    assert given_up == [never_ready.session_id]
    assert attempts[never_ready.session_id] == 3
    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {"undecodable", "retries_exhausted"}
    assert by_reason["undecodable"].data == poison
    assert by_reason["undecodable"].attempts == 1
    kept = SessionEnded.model_validate_json(by_reason["retries_exhausted"].data)
    assert kept == never_ready
    assert by_reason["retries_exhausted"].attempts == 3
    assert by_reason["retries_exhausted"].original_subject == subject


async def test_an_event_the_handler_gives_up_on_goes_to_the_dead_letters_at_once(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("give_up")
    hopeless = ended(1)
    attempts: list[str] = []
    given_up: list[str] = []

    async def handle(event: SessionEnded) -> None:
        attempts.append(event.session_id)
        raise GiveUp("waited_too_long")

    async def give_up(event: SessionEnded) -> None:
        given_up.append(event.session_id)

    await publish_event(js, subject, hopeless, dedup_id=hopeless.dedup_id)
    try:
        async with consuming(
            js, handle, subject=subject, on_give_up=give_up, redelivery=Redelivery(max_deliver=50)
        ) as durable:

            async def dead() -> bool:
                return await count_dead_letters(js, durable) == 1

            await eventually(dead)
            letters = [letter async for letter in dead_letters(js, durable)]
    finally:
        await nc.close()
    assert attempts == given_up == [hopeless.session_id]
    assert [(letter.reason, letter.attempts) for letter in letters] == [("given_up", 1)]


def test_the_retry_horizon_is_every_wait_between_the_attempts() -> None:
    policy = Redelivery(max_deliver=5, first_delay=1.0, max_delay=5.0)
    assert [policy.delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.horizon == 12.0
    assert Redelivery(max_deliver=1).horizon == 0.0


async def test_a_dead_letter_replays_once_the_cause_is_fixed_and_leaves_the_rest(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("replay")
    fixed, still_broken = ended(1), ended(2)
    store_is_up = False
    stored: Counter[str] = Counter()

    async def handle(event: SessionEnded) -> None:
        if not store_is_up or event.session_id == still_broken.session_id:
            raise RuntimeError("store down")
        stored[event.session_id] += 1

    try:
        for event in (fixed, still_broken):
            await publish_event(js, subject, event, dedup_id=event.dedup_id)
        async with consuming(
            js, handle, subject=subject, redelivery=Redelivery(max_deliver=2, first_delay=0.05)
        ) as durable:

            async def both_dead() -> bool:
                return await count_dead_letters(js, durable) == 2

            await eventually(both_dead)
        store_is_up = True
        first = await replay_dead_letters(js, durable, SessionEnded, handle)
        second = await replay_dead_letters(js, durable, SessionEnded, handle)
    finally:
        await nc.close()

    assert (first.replayed, first.failed, first.waiting) == (1, 1, 1)
    assert (second.replayed, second.failed, second.waiting) == (0, 1, 1)
    assert stored == {fixed.session_id: 1}


async def test_a_slow_batch_is_kept_in_progress_so_nothing_is_redelivered_meanwhile(
    nats_url: str,
) -> None:
    """Each message takes longer than the ack wait; none may go to the other replica meanwhile."""
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("slow")
    events = [ended(1) for _ in range(3)]
    handled: Counter[str] = Counter()

    async def handle(event: SessionEnded) -> None:
        handled[event.session_id] += 1
        await asyncio.sleep(4.0)

    try:
        for event in events:
            await publish_event(js, subject, event, dedup_id=event.dedup_id)
        async with consuming(
            js, handle, subject=subject, redelivery=Redelivery(ack_wait=3.0), replicas=2
        ) as durable:

            async def all_acked() -> bool:
                info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
                return bool(info.ack_floor and info.ack_floor.consumer_seq >= 3)

            await eventually(all_acked, timeout=60)
            info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
    finally:
        await nc.close()

    assert handled == {event.session_id: 1 for event in events}
    assert info.num_redelivered == 0


async def test_messages_every_reader_acknowledged_are_purged_and_erasure_reaches_the_rest(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("purge")
    first, second = ended(1), ended(2)
    fast_seen: list[str] = []
    slow_may_go = asyncio.Event()

    async def fast(event: SessionEnded) -> None:
        fast_seen.append(event.session_id)

    async def slow(event: SessionEnded) -> None:
        if event.session_id == second.session_id:
            await slow_may_go.wait()

    try:
        sequences = [
            await publish_event(js, subject, event, dedup_id=event.dedup_id)
            for event in (first, second)
        ]

        async def stored(count: int) -> bool:
            info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
            return (info.state.subjects or {}).get(subject, 0) == count

        async with consuming(js, fast, subject=subject), consuming(js, slow, subject=subject):
            await eventually(lambda: len(fast_seen) == 2)
            # The slow reader has not acknowledged the second message: only the first goes.

            async def first_purged() -> bool:
                await purge_acknowledged(js, subject)
                return await stored(1)

            try:
                await eventually(first_purged)
                assert await forget_events(js, sequences) == 1
                assert await forget_events(js, sequences) == 0
            finally:
                slow_may_go.set()  # so the slow reader can stop
    finally:
        await nc.close()


async def test_nothing_is_purged_before_every_named_reader_exists(nats_url: str) -> None:
    """The crisis classifier's consumer of turns is made when the tools service first starts:
    memory, started before it, must not purge the turns it acknowledged, or they would never be
    screened."""
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject = own_subject("purge_readers")
    seen: list[str] = []

    async def handle(event: SessionEnded) -> None:
        seen.append(event.session_id)

    try:
        sequence = await publish_event(js, subject, ended(1), dedup_id=ended(1).dedup_id)

        async def stored() -> int:
            info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
            return (info.state.subjects or {}).get(subject, 0)

        async with consuming(js, handle, subject=subject) as first:

            async def acknowledged() -> bool:
                # Through this event, not merely past zero: a new consumer's floor starts just
                # below the stream's first message, which earlier purges have moved up.
                info = await js.consumer_info(subjects.EVENTS_STREAM, first)
                return handled_through(info) >= sequence

            await eventually(acknowledged)
            late = f"test-late-{uuid.uuid4().hex[:8]}"
            assert await purge_acknowledged(js, subject, readers=(first, late)) == 0
            assert await stored() == 1
            # Every reader there and done: now it goes.
            assert await purge_acknowledged(js, subject, readers=(first,)) > 0
            assert await stored() == 0
    finally:
        await nc.close()


def test_the_turns_wait_for_memory_and_the_crisis_classifier() -> None:
    assert set(subjects.EVENT_READERS[subjects.TURN_RECORDED]) == {
        subjects.MEMORY_TURNS_CONSUMER,
        subjects.TOOLS_CRISIS_CONSUMER,
    }


async def test_a_consumer_is_caught_up_only_once_it_handled_all_stored_on_its_subject(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    subject, elsewhere = own_subject("caught_up"), own_subject("elsewhere")
    first, held, other = ended(1), ended(2), ended(3)
    seen: list[str] = []
    held_started, held_may_go = asyncio.Event(), asyncio.Event()

    async def handle(event: SessionEnded) -> None:
        if event.session_id == held.session_id:
            held_started.set()
            await held_may_go.wait()
        seen.append(event.session_id)

    try:
        async with consuming(js, handle, subject=subject) as durable:
            assert await caught_up(js, durable)  # nothing stored on its subject yet
            await publish_event(js, subject, first, dedup_id=first.dedup_id)
            await eventually(lambda: caught_up(js, durable))
            assert seen == [first.session_id]

            await publish_event(js, subject, held, dedup_id=held.dedup_id)
            # Stored, so not caught up, whether or not the consumer has it yet.
            assert not await caught_up(js, durable)
            await asyncio.wait_for(held_started.wait(), 30)
            # A message on a subject it does not read is not waited for.
            await publish_event(js, elsewhere, other, dedup_id=other.dedup_id)
            assert not await caught_up(js, durable)  # still handling the held one
            held_may_go.set()
            await eventually(lambda: caught_up(js, durable))
            assert seen == [first.session_id, held.session_id]
    finally:
        await nc.close()


async def test_the_consumer_outlives_a_nats_restart_and_then_carries_on(
    restartable_nats: PrivateNats,
) -> None:
    server = restartable_nats
    handled: list[str] = []

    async def handle(event: SessionEnded) -> None:
        handled.append(event.session_id)

    try:
        server.start()
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = await ensure_events_stream(nc)
        before, after = ended(1), ended(1)
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume_events(
                js,
                subject=subjects.SESSION_ENDED,
                durable="restart",
                event_model=SessionEnded,
                handle=handle,
                stop=stop,
            )
        )
        await publish_event(js, subjects.SESSION_ENDED, before, dedup_id=before.dedup_id)
        await eventually(lambda: handled == [before.session_id])

        server.stop()
        await asyncio.sleep(2.0)  # the consumer's fetches fail while the server is gone
        server.start()

        async def published() -> bool:
            try:
                await publish_event(js, subjects.SESSION_ENDED, after, dedup_id=after.dedup_id)
            except (nats.errors.Error, TimeoutError):
                return False
            return True

        await eventually(published)
        await eventually(lambda: after.session_id in handled, timeout=60)
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 30)
        await nc.close()
    finally:
        server.stop()
    assert handled == [before.session_id, after.session_id]


async def test_an_ack_that_times_out_is_not_fatal_and_the_event_comes_back(
    restartable_nats: PrivateNats,
) -> None:
    """The server goes away while a handler works: its ack cannot be answered. The consumer
    must carry on (the event is redelivered later), never end its loop and the process."""
    server = restartable_nats
    handled: list[str] = []
    server_gone = asyncio.Event()

    async def handle(event: SessionEnded) -> None:
        handled.append(event.session_id)
        if not server_gone.is_set():
            server.stop()  # the ack that follows gets no answer
            server_gone.set()

    try:
        server.start()
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = await ensure_events_stream(nc)
        before, after = ended(1), ended(1)
        await publish_event(js, subjects.SESSION_ENDED, before, dedup_id=before.dedup_id)
        stop = asyncio.Event()
        task = asyncio.create_task(
            consume_events(
                js,
                subject=subjects.SESSION_ENDED,
                durable="ack-timeout",
                event_model=SessionEnded,
                handle=handle,
                stop=stop,
                redelivery=Redelivery(ack_wait=3.0),
            )
        )
        await asyncio.wait_for(server_gone.wait(), 30)
        await asyncio.sleep(7.0)  # longer than the ack's own timeout: it has failed by now
        assert not task.done(), "a failed ack ended the consumer"
        server.start()

        async def published() -> bool:
            try:
                await publish_event(js, subjects.SESSION_ENDED, after, dedup_id=after.dedup_id)
            except (nats.errors.Error, TimeoutError):
                return False
            return True

        await eventually(published)
        await eventually(lambda: after.session_id in handled, timeout=60)
        # Never acknowledged, so delivered again: at least once, nothing dropped.
        await eventually(lambda: handled.count(before.session_id) >= 2, timeout=60)
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 30)
        await nc.close()
    finally:
        server.stop()
