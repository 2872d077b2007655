"""The finalizations table as a state machine: only conditional moves, final states final, one
replica at a time per session, erased sessions refused, and retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest_asyncio

from opencouch.contracts.voice_api import Feedback
from opencouch.finalizer.arc import SessionArc
from opencouch.finalizer.store import Completion, FinalizationStore, ReportOutbox
from opencouch.finalizer.testing import new_session
from opencouch.runtime.postgres import DictPool, connection_pool

ARC = SessionArc(
    summary="The user talked about work. They closed calmer.",
    themes=("work",),
    mood_opened="anxious",
    mood_closed="calmer",
    open_loops=(),
    resolved_threads=("I'll take a walk at lunch.",),
    method="extractive",
)


def done(arc: SessionArc | None = ARC) -> Completion:
    return Completion(
        turn_count=4,
        duration_seconds=300,
        peak_crisis_level=1,
        memories_committed=2,
        arc=arc,
        detail="Finalized 4 turns.",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def pool(migrated: str) -> AsyncIterator[DictPool]:
    async with connection_pool(migrated, max_size=4) as opened:
        yield opened


async def test_status_moves_forward_only_through_conditional_updates(pool: DictPool) -> None:
    store = FinalizationStore(pool)
    session_id, thread_id = new_session()
    opened = await store.open(session_id, thread_id)
    assert opened is not None
    assert opened.status == "pending"
    first = await store.start(session_id)
    assert first is not None
    assert (first.number, first.arc) == (1, None)
    assert await store.keep_arc(session_id, ARC)
    second = await store.start(session_id)
    assert second is not None
    assert (second.number, second.arc) == (2, ARC)  # a later attempt keeps the drafted arc

    completed = await store.complete(
        session_id, done(), feedback=Feedback.NEGATIVE, feedback_days=180, report=True
    )
    assert completed is not None
    assert (completed.status, completed.summary, completed.peak_crisis_level) == (
        "completed",
        ARC.summary,
        1,
    )
    # Final is final: no second completion, no failure, no new attempt, no arc rewrite.
    assert (
        await store.complete(session_id, done(None), feedback=None, feedback_days=1, report=True)
        is None
    )
    assert await store.fail(session_id, report=True) is None
    assert await store.start(session_id) is None
    assert not await store.keep_arc(session_id, ARC)
    assert await store.open(session_id, thread_id) == completed
    assert await store.get(session_id) == completed


async def test_a_failure_says_what_the_session_waited_for(pool: DictPool) -> None:
    store = FinalizationStore(pool)
    session_id, thread_id = new_session()
    await store.open(session_id, thread_id)
    await store.start(session_id)
    await store.note_wait(session_id, "memory holds 1 of the 2 acknowledged turns")
    failed = await store.fail(session_id, report=False)
    assert failed is not None
    assert failed.detail == (
        "Finalization failed: memory holds 1 of the 2 acknowledged turns. The transcript is kept."
    )
    assert failed.finalized_at is not None
    assert (
        await store.complete(session_id, done(), feedback=None, feedback_days=1, report=False)
        is None
    )


async def test_one_replica_at_a_time_holds_a_session(pool: DictPool) -> None:
    store = FinalizationStore(pool)
    session_id, _ = new_session()
    other, _ = new_session()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> bool:
        async with store.exclusive(session_id) as held:
            inside.set()
            await release.wait()
            return held

    holder = asyncio.create_task(hold())
    await inside.wait()
    async with store.exclusive(session_id) as second:
        assert second is False
    async with store.exclusive(other) as unrelated:
        assert unrelated is True
    release.set()
    assert await holder is True
    async with store.exclusive(session_id) as again:
        assert again is True


async def test_an_erased_session_is_deleted_everywhere_and_refused_from_then_on(
    pool: DictPool, migrated: str
) -> None:
    store = FinalizationStore(pool)
    session_id, thread_id = new_session()
    await store.open(session_id, thread_id)
    await store.start(session_id)
    await store.complete(
        session_id, done(), feedback=Feedback.POSITIVE, feedback_days=180, report=True
    )
    in_flight, in_flight_thread = new_session()
    await store.open(in_flight, in_flight_thread)
    await store.start(in_flight)

    assert await store.erase([session_id, in_flight]) == 2
    with psycopg.connect(migrated) as conn:
        for table in ("finalizations", "session_feedback", "webhook_deliveries"):
            left = conn.execute(
                f"SELECT count(*) FROM finalizer.{table} WHERE session_id = ANY(%s)",
                ([session_id, in_flight],),
            ).fetchone()
            assert left == (0,), table
    assert await store.open(session_id, thread_id) is None
    assert await store.is_erased(in_flight)
    assert await store.start(in_flight) is None
    assert (
        await store.complete(in_flight, done(), feedback=None, feedback_days=1, report=True) is None
    )


async def test_retention_deletes_expired_feedback_and_old_erasure_markers(
    pool: DictPool, migrated: str
) -> None:
    store = FinalizationStore(pool)
    kept, expired, erased_long_ago = (new_session() for _ in range(3))
    for session_id, thread_id in (kept, expired):
        await store.open(session_id, thread_id)
        await store.start(session_id)
        await store.complete(
            session_id, done(), feedback=Feedback.SKIP, feedback_days=180, report=False
        )
    await store.erase([erased_long_ago[0]])
    with psycopg.connect(migrated) as conn:
        conn.execute(
            "UPDATE finalizer.session_feedback SET expires_at = now() - interval '1 day' "
            "WHERE session_id = %s",
            (expired[0],),
        )
        conn.execute(
            "UPDATE finalizer.erased_sessions SET erased_at = now() - interval '46 days' "
            "WHERE session_id = %s",
            (erased_long_ago[0],),
        )
        # A row written for an erased session by a finalization that raced the erasure.
        conn.execute("INSERT INTO finalizer.erased_sessions (session_id) VALUES (%s)", (kept[0],))
    deleted = await store.apply_retention(erased_days=45, arc_hours=24)
    assert deleted["feedback"] >= 1
    assert deleted["erasure_markers"] >= 1
    assert deleted["erased_finalizations"] >= 1
    with psycopg.connect(migrated) as conn:
        feedback = conn.execute(
            "SELECT session_id FROM finalizer.session_feedback WHERE session_id = ANY(%s)",
            ([kept[0], expired[0]],),
        ).fetchall()
        markers = conn.execute(
            "SELECT session_id FROM finalizer.erased_sessions WHERE session_id = ANY(%s)",
            ([kept[0], erased_long_ago[0]],),
        ).fetchall()
    assert feedback == []  # the expired one by age; the kept one went with its erased session
    assert markers == [(kept[0],)]


async def test_an_arc_is_dropped_a_day_after_its_session_was_finalized_unless_its_report_is_owed(
    pool: DictPool, migrated: str
) -> None:
    """Memory keeps a session's summary, and the person can ask it to forget it: a second copy
    here, kept for good, would outlive that."""
    store = FinalizationStore(pool)
    old, owed, recent = (new_session() for _ in range(3))
    for (session_id, thread_id), report in ((old, False), (owed, True), (recent, False)):
        await store.open(session_id, thread_id)
        await store.start(session_id)
        await store.complete(session_id, done(), feedback=None, feedback_days=1, report=report)
    with psycopg.connect(migrated) as conn:
        conn.execute(
            "UPDATE finalizer.finalizations SET finalized_at = now() - interval '25 hours' "
            "WHERE session_id = ANY(%s)",
            ([old[0], owed[0]],),
        )
    assert (await store.apply_retention(erased_days=45, arc_hours=24))["arcs"] >= 1
    with psycopg.connect(migrated) as conn:
        rows: dict[str, str] = dict(
            conn.execute(
                "SELECT session_id, (summary, themes, mood_opened, mood_closed, open_loops, "
                "resolved_threads)::text FROM finalizer.finalizations WHERE session_id = ANY(%s)",
                ([old[0], owed[0], recent[0]],),
            ).fetchall()
        )
        kept = conn.execute(
            "SELECT status, turn_count, summary_method FROM finalizer.finalizations "
            "WHERE session_id = %s",
            (old[0],),
        ).fetchone()
    assert rows[old[0]] == "(,[],,,[],[])"  # nothing of what was said
    assert kept == ("completed", 4, ARC.method)  # what the session was, without its content
    assert ARC.summary in rows[owed[0]]  # its report still carries it
    assert ARC.summary in rows[recent[0]]


async def test_a_report_is_claimed_by_one_replica_at_a_time(pool: DictPool) -> None:
    store, outbox, other = FinalizationStore(pool), ReportOutbox(pool), ReportOutbox(pool)
    session_id, thread_id = new_session()
    await store.open(session_id, thread_id)
    await store.start(session_id)
    await store.complete(session_id, done(), feedback=None, feedback_days=1, report=True)

    claimed = [due for due in await outbox.claim_due(60) if due.session_id == session_id]
    assert [due.attempt for due in claimed] == [1]
    assert session_id not in {due.session_id for due in await other.claim_due(60)}
    await outbox.retry_later(session_id, 0, 500, "HTTP 500")
    again = [due for due in await other.claim_due(60) if due.session_id == session_id]
    assert [due.attempt for due in again] == [2]
    await other.delivered(session_id, 204)
    await outbox.retry_later(session_id, 0, 500, "late")  # a stale claim changes nothing
    assert session_id not in {due.session_id for due in await outbox.claim_due(60)}
    source = await outbox.report_source(session_id)
    assert source is not None
    assert source[0].summary == ARC.summary
