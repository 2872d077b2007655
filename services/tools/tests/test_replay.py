"""Turns the crisis screening gave up on are screened when replayed with one command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import nats

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnRecorded
from opencouch.runtime.jetstream import (
    ORIGINAL_SEQUENCE,
    ORIGINAL_SUBJECT,
    dead_letters,
    ensure_events_stream,
)
from opencouch.runtime.postgres import DictPool
from opencouch.tools.testing import new_session_id


def turn(session_id: str, user_text: str) -> TurnRecorded:
    return TurnRecorded(
        session_id=session_id,
        thread_id="thread-replay",
        client_turn_id=f"turn-{uuid.uuid4().hex[:12]}",
        user_text=user_text,
        assistant_text="I hear you.",
        route="therapeutic",
        response_style="voice",
        outcome="completed",
        recorded_at=datetime.now(UTC),
    )


async def log_rows(pool: DictPool, session_id: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT level, reason FROM tools.crisis_log WHERE session_hash = %s",
            (hashlib.sha256(session_id.encode()).hexdigest(),),
        )
        return list(await cursor.fetchall())


def replay(nats_url: str, database_url: str, redis_url: str) -> dict[str, dict[str, int]]:
    done = subprocess.run(
        [sys.executable, "-m", "opencouch.tools.replay_dead_letters"],
        env={
            **os.environ,
            "TOOLS_NATS_URL": nats_url,
            "TOOLS_DATABASE_URL": database_url,
            "TOOLS_REDIS_URL": redis_url,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr[-2000:]
    report: dict[str, dict[str, int]] = json.loads(done.stdout)
    return report


async def test_a_dead_lettered_turn_at_risk_is_logged_once_when_replayed(
    nats_url: str, database_url: str, redis_url: str, tools_pool: DictPool
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = await ensure_events_stream(nc)
        session_id = new_session_id()
        at_risk = turn(session_id, f"I want to kill myself tonight ({uuid.uuid4().hex[:6]})")
        await js.publish(
            subjects.dead_letters(subjects.TOOLS_CRISIS_CONSUMER),
            at_risk.model_dump_json().encode(),
            stream=subjects.DEAD_LETTERS_STREAM,
            headers={ORIGINAL_SUBJECT: subjects.TURN_RECORDED, ORIGINAL_SEQUENCE: "1"},
        )

        first = replay(nats_url, database_url, redis_url)
        second = replay(nats_url, database_url, redis_url)

        assert first[subjects.TOOLS_CRISIS_CONSUMER]["replayed"] >= 1
        assert second[subjects.TOOLS_CRISIS_CONSUMER]["failed"] == 0
        rows = await log_rows(tools_pool, session_id)
        assert [(row["level"], row["reason"]) for row in rows] == [(3, "timeframe")]
        left = [
            letter
            async for letter in dead_letters(js, subjects.TOOLS_CRISIS_CONSUMER)
            if session_id.encode() in letter.data
        ]
        assert left == []
    finally:
        await nc.close()
