"""Every user turn is screened: persistent turns from JetStream (their level is published for
memory), incognito turns from core NATS (nothing kept but the scrubbed crisis-log row)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import psycopg
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.events import CrisisScreen, TurnClassified, TurnRecorded
from opencouch.runtime.jetstream import ensure_events_stream, publish_event
from opencouch.runtime.messaging import flushed
from opencouch.runtime.metrics import CRISIS_TURNS
from opencouch.runtime.postgres import DictPool
from opencouch.tools.screening import CrisisScreening
from opencouch.tools.session_state import KEY_PREFIX, SessionState
from opencouch.tools.store import ToolsStore
from opencouch.tools.testing import ToolsHarness, new_session_id


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """The events stream, for screening turns directly."""
    nc = await nats.connect(nats_url)
    try:
        yield await ensure_events_stream(nc)
    finally:
        await nc.close()


def turn(session_id: str, user_text: str, assistant_text: str = "I hear you.") -> TurnRecorded:
    return TurnRecorded(
        session_id=session_id,
        thread_id="thread-screening",
        client_turn_id=f"turn-{uuid.uuid4().hex[:12]}",
        user_text=user_text,
        assistant_text=assistant_text,
        route="therapeutic",
        response_style="voice",
        outcome="completed",
        recorded_at=datetime.now(UTC),
    )


async def log_rows(pool: DictPool, session_id: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM tools.crisis_log WHERE session_hash = %s ORDER BY id",
            (hashlib.sha256(session_id.encode()).hexdigest(),),
        )
        return list(await cursor.fetchall())


async def until(check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_persistent_turns_are_classified_and_their_level_published(
    tools: ToolsHarness, nats_url: str, tools_pool: DictPool
) -> None:
    session = new_session_id()
    received: dict[str, TurnClassified] = {}

    async def collect(msg: Msg) -> None:
        event = TurnClassified.model_validate_json(msg.data)
        if event.session_id == session:
            received[event.client_turn_id] = event

    nc = await nats.connect(nats_url)
    try:
        await nc.subscribe(subjects.TURN_CLASSIFIED, cb=collect)
        js = await ensure_events_stream(nc)
        calm = turn(session, "work is killing me but it was a good day")
        check = turn(
            session,
            "I want to die",
            "That sounds so painful. Are you having thoughts of ending your life?",
        )
        answer = turn(session, "Yeah, sometimes.")
        plan = turn(session, "I'm going to do it tonight")
        for event in (calm, check, answer, plan):
            await publish_event(js, subjects.TURN_RECORDED, event, dedup_id=event.dedup_id)
            await until(lambda event=event: _received(received, event.client_turn_id))
    finally:
        await nc.close()
    levels = [received[event.client_turn_id] for event in (calm, check, answer, plan)]
    assert [(event.level, event.reason) for event in levels] == [
        (0, "idiom"),
        (2, "ideation"),
        (2, "affirmed_after_check"),
        (3, "plan_after_ideation"),
    ]
    assert all(event.thread_id == "thread-screening" for event in levels)
    rows = await log_rows(tools_pool, session)
    assert [(row["level"], row["reason"]) for row in rows] == [
        (2, "ideation"),
        (2, "affirmed_after_check"),
        (3, "plan_after_ideation"),
    ]


async def _received(received: dict[str, TurnClassified], key: str) -> bool:
    return key in received


async def test_incognito_turns_leave_only_the_scrubbed_log_row(
    tools: ToolsHarness, nats_url: str, tools_pool: DictPool, redis_client: Redis
) -> None:
    session = new_session_id()
    published: list[bytes] = []

    async def keep(msg: Msg) -> None:
        published.append(msg.data)

    nc = await nats.connect(nats_url)
    try:
        await nc.subscribe(subjects.TURN_CLASSIFIED, cb=keep)
        screen = CrisisScreen(
            session_id=session,
            client_turn_id="incognito-turn-1",
            user_text="Honestly I'm going to kill myself tonight",
            transcript=[],
        )
        calm = CrisisScreen(
            session_id=session, client_turn_id="incognito-turn-2", user_text="thanks, that helps"
        )
        await nc.publish(subjects.CRISIS_SCREEN, calm.model_dump_json().encode())
        await nc.publish(subjects.CRISIS_SCREEN, screen.model_dump_json().encode())
        await flushed(nc)
        rows = await until(lambda: log_rows(tools_pool, session))
    finally:
        await nc.close()
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"id", "session_hash", "turn_hash", "level", "reason", "logged_at"}
    assert (row["level"], row["reason"]) == (3, "timeframe")
    assert row["session_hash"] == hashlib.sha256(session.encode()).hexdigest()
    assert session not in str(row)
    assert await redis_client.keys(f"{KEY_PREFIX}:{session}:*") == []
    assert not any(session.encode() in data for data in published)


async def test_incognito_context_comes_from_the_transcript_sent_with_it(
    tools_store: ToolsStore, tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    screening = CrisisScreening(tools_store, SessionState(redis_client, 60), js)
    session = new_session_id()
    await screening.on_crisis_screen(
        CrisisScreen(
            session_id=session,
            client_turn_id="t-2",
            user_text="Kind of, yeah.",
            transcript=[
                {"role": "user", "text": "everything is so heavy"},
                {"role": "assistant", "text": "Are you thinking about suicide?"},
            ],
        )
    )
    rows = await log_rows(tools_pool, session)
    assert [(row["level"], row["reason"]) for row in rows] == [(2, "affirmed_after_check")]


async def test_no_to_are_you_safe_is_a_disclosure_in_both_memory_modes(
    tools_store: ToolsStore, tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    """It was read as a denial: level 0, no crisis path and no log row."""
    screening = CrisisScreening(tools_store, SessionState(redis_client, 60), js)
    persistent, incognito = new_session_id(), new_session_id()
    asked = turn(persistent, "everything is so heavy", "Are you safe right now?")
    answered = turn(persistent, "No.")
    answered = answered.model_copy(update={"recorded_at": asked.recorded_at + timedelta(seconds=5)})
    await screening.on_turn_recorded(asked)
    await screening.on_turn_recorded(answered)
    await screening.on_crisis_screen(
        CrisisScreen(
            session_id=incognito,
            client_turn_id="t-2",
            user_text="No, not really.",
            transcript=[
                {"role": "user", "text": "everything is so heavy"},
                {"role": "assistant", "text": "Are you safe right now?"},
            ],
        )
    )
    for session in (persistent, incognito):
        rows = await log_rows(tools_pool, session)
        assert [(row["level"], row["reason"]) for row in rows] == [(2, "unsafe_after_check")]


async def test_screening_a_turn_twice_logs_it_once(
    tools_store: ToolsStore, tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    screening = CrisisScreening(tools_store, SessionState(redis_client, 60), js)
    session = new_session_id()
    event = turn(session, "I've been cutting myself again")
    await screening.on_turn_recorded(event)
    await screening.on_turn_recorded(event)  # a redelivery
    screen = CrisisScreen(session_id=session, client_turn_id="same", user_text="I want to die")
    await screening.on_crisis_screen(screen)
    await screening.on_crisis_screen(screen)
    rows = await log_rows(tools_pool, session)
    assert [(row["level"], row["reason"]) for row in rows] == [(2, "self_harm"), (2, "ideation")]


async def test_a_turn_screened_late_does_not_put_back_an_older_context(
    tools_store: ToolsStore, redis_client: Redis, js: JetStreamContext
) -> None:
    """The turn whose assistant line asked about safety is screened; then an earlier turn comes
    again (a redelivery): the next answer is still read as an answer to the safety question,
    and the ideation said earlier still counts."""
    state = SessionState(redis_client, 60)
    screening = CrisisScreening(tools_store, state, js)
    session = new_session_id()
    earlier = turn(session, "I want to die", "That sounds so heavy.")
    later = turn(session, "it is a lot", "Are you thinking about killing yourself?")
    later = later.model_copy(update={"recorded_at": earlier.recorded_at + timedelta(seconds=9)})
    await screening.on_turn_recorded(earlier)
    await screening.on_turn_recorded(later)
    await screening.on_turn_recorded(earlier)  # redelivered after the later one
    memory = await state.screening_memory(session)
    assert memory.safety_check_pending
    assert memory.ideation_earlier


class _FailsOnce(ToolsStore):
    """The real store, whose first crisis-log write fails as a dropped connection would."""

    failed = False

    async def log_crisis(self, *args: Any, **kwargs: Any) -> bool:
        if not self.failed:
            self.failed = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await super().log_crisis(*args, **kwargs)


async def test_a_turn_that_fails_once_still_gives_the_next_turn_its_context(
    tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    """A Postgres blip while logging the turn whose assistant line asked the safety question:
    JetStream delivers it again, after the next turn of the session. That next turn, the
    person's "yes", was screened without the question: level 0, no log row, never corrected."""
    screening = CrisisScreening(_FailsOnce(tools_pool, 2.0), SessionState(redis_client, 60), js)
    session = new_session_id()
    check = turn(session, "I want to die", "Are you having thoughts of ending your life?")
    answer = turn(session, "yes", "I'm really glad you told me.")
    answer = answer.model_copy(update={"recorded_at": check.recorded_at + timedelta(seconds=8)})
    with pytest.raises(psycopg.OperationalError):
        await screening.on_turn_recorded(check)
    await screening.on_turn_recorded(answer)
    await screening.on_turn_recorded(check)  # delivered again
    rows = await log_rows(tools_pool, session)
    assert [(row["level"], row["reason"]) for row in rows] == [
        (2, "affirmed_after_check"),
        (2, "ideation"),
    ]


async def test_a_turn_sent_again_is_screened_in_the_context_it_was_first_screened_in(
    tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    """Its context was saved before its own crisis-log write failed: sent again, the "yes" to
    the safety question was read with no question pending (level 0, no row); and a benign
    "yes" whose own assistant line asked the question was read as the answer to it."""
    state = SessionState(redis_client, 60)
    screening = CrisisScreening(_FailsOnce(tools_pool, 2.0), state, js)
    session = new_session_id()
    check = turn(session, "it's been a rough week", "Are you having thoughts of ending your life?")
    answer = turn(session, "yes", "I'm really glad you told me.")
    answer = answer.model_copy(update={"recorded_at": check.recorded_at + timedelta(seconds=8)})
    await screening.on_turn_recorded(check)
    with pytest.raises(psycopg.OperationalError):
        await screening.on_turn_recorded(answer)  # a Postgres blip on the "yes"
    await screening.on_turn_recorded(answer)  # JetStream delivers it again
    # Its own question: "yes" said before it was asked is no answer to it, however often.
    benign = new_session_id()
    said = turn(benign, "yes", "Are you having thoughts of ending your life?")
    await screening.on_turn_recorded(said)
    await screening.on_turn_recorded(said)
    memory = await state.screening_memory(benign)
    rows = await log_rows(tools_pool, session)
    assert [(row["level"], row["reason"]) for row in rows] == [(2, "affirmed_after_check")]
    assert await log_rows(tools_pool, benign) == []
    assert memory.safety_check_pending  # ...and the next turn is read as its answer


def _crisis_turns(level: int) -> float:
    counted: float = CRISIS_TURNS.labels(str(level), "incognito")._value.get()
    return counted


async def test_an_incognito_turn_sent_again_is_screened_and_counted_once(
    tools_store: ToolsStore, tools_pool: DictPool, redis_client: Redis, js: JetStreamContext
) -> None:
    """The gateway screens a retried incognito turn again, marked ``resent``: its first request
    may never have been screened. Logged once either way, and counted once."""
    screening = CrisisScreening(tools_store, SessionState(redis_client, 60), js)
    first_missed = new_session_id()
    before = _crisis_turns(2)
    # The first request died before its screen: the retry's screen logs and counts it.
    await screening.on_crisis_screen(
        CrisisScreen(
            session_id=first_missed, client_turn_id="t", user_text="I want to die", resent=True
        )
    )
    assert _crisis_turns(2) == before + 1
    both = new_session_id()
    screen = CrisisScreen(session_id=both, client_turn_id="t", user_text="I want to die")
    await screening.on_crisis_screen(screen)
    await screening.on_crisis_screen(screen.model_copy(update={"resent": True}))
    assert _crisis_turns(2) == before + 2
    calm_before = _crisis_turns(0)
    calm = CrisisScreen(session_id=both, client_turn_id="calm", user_text="thanks, that helps")
    await screening.on_crisis_screen(calm)
    await screening.on_crisis_screen(calm.model_copy(update={"resent": True}))
    assert _crisis_turns(0) == calm_before + 1
    for session in (first_missed, both):
        rows = await log_rows(tools_pool, session)
        assert [(row["level"], row["reason"]) for row in rows] == [(2, "ideation")]
