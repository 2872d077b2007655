"""The crisis log is append-only, holds no identity or text, and is purged after 90 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from opencouch.runtime.postgres import DictPool
from opencouch.tools.exercises import ExerciseRun
from opencouch.tools.retention import purge_expired
from opencouch.tools.store import ToolsStore, opaque_id
from opencouch.tools.testing import new_session_id

NINETY_DAYS = timedelta(days=90)


async def kept_turns(pool: DictPool, session_id: str) -> set[str]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT turn_hash FROM tools.crisis_log WHERE session_hash = %s",
            (opaque_id(session_id),),
        )
        return {row["turn_hash"] for row in await cursor.fetchall()}


async def test_retention_deletes_only_rows_older_than_ninety_days(
    tools_store: ToolsStore, tools_pool: DictPool
) -> None:
    session = new_session_id()
    now = datetime.now(UTC)
    for turn, age in (("old", 120), ("just-over", 91), ("just-under", 89), ("new", 0)):
        assert await tools_store.log_crisis(
            session, turn, 2, "ideation", at=now - timedelta(days=age)
        )
    crisis_rows, _ = await purge_expired(tools_store, NINETY_DAYS, timedelta(days=1))
    assert crisis_rows >= 2
    assert await kept_turns(tools_pool, session) == {
        opaque_id(session, "just-under"),
        opaque_id(session, "new"),
    }


async def test_rows_cannot_be_changed_or_deleted_early(
    tools_store: ToolsStore, tools_pool: DictPool
) -> None:
    session = new_session_id()
    await tools_store.log_crisis(session, "turn-1", 3, "plan")
    for statement in (
        "UPDATE tools.crisis_log SET level = 2 WHERE session_hash = %s",
        "DELETE FROM tools.crisis_log WHERE session_hash = %s",
    ):
        with pytest.raises(psycopg.errors.RaiseException):
            async with tools_pool.connection() as conn:
                await conn.execute(statement, (opaque_id(session),))
    assert len(await kept_turns(tools_pool, session)) == 1


async def test_a_turn_is_logged_once_and_only_at_level_two_or_more(
    tools_store: ToolsStore, tools_pool: DictPool
) -> None:
    session = new_session_id()
    assert await tools_store.log_crisis(session, "turn-1", 2, "self_harm")
    assert not await tools_store.log_crisis(session, "turn-1", 2, "self_harm")
    with pytest.raises(psycopg.errors.CheckViolation):
        await tools_store.log_crisis(session, "turn-2", 1, "distress")
    with pytest.raises(psycopg.errors.CheckViolation):
        await tools_store.log_crisis(session, "turn-3", 2, "I want to die")
    assert len(await kept_turns(tools_pool, session)) == 1


async def test_retention_also_drops_exercise_runs_of_sessions_long_over(
    tools_store: ToolsStore, tools_pool: DictPool
) -> None:
    session = new_session_id()
    now = datetime.now(UTC)
    run = ExerciseRun(exercise_id="grounding_box_breathing", started_at=now, updated_at=now)
    await tools_store.save_exercise_run(session, run)
    async with tools_pool.connection() as conn:
        await conn.execute(
            "UPDATE tools.exercise_runs SET updated_at = now() - interval '3 days' "
            "WHERE session_id = %s",
            (session,),
        )
    _, exercise_rows = await purge_expired(tools_store, NINETY_DAYS, timedelta(days=1))
    assert exercise_rows >= 1
    assert await tools_store.exercise_run(session) is None


async def test_the_retention_job_runs_until_stopped(
    tools_store: ToolsStore, tools_pool: DictPool
) -> None:
    import asyncio

    from opencouch.tools.retention import run_retention

    session = new_session_id()
    await tools_store.log_crisis(
        session, "ancient", 2, "ideation", at=datetime.now(UTC) - timedelta(days=200)
    )
    stop = asyncio.Event()
    job = asyncio.create_task(
        run_retention(
            tools_store,
            crisis_log_retention=NINETY_DAYS,
            exercise_retention=timedelta(days=1),
            interval=0.05,
            stop=stop,
        )
    )
    for _ in range(200):
        if not await kept_turns(tools_pool, session):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(job, 10)
    assert await kept_turns(tools_pool, session) == set()
