"""A session's tool state leaves Redis when the session closes, or when it could no longer call
tools: not a day later."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionClosed
from opencouch.runtime.messaging import flushed
from opencouch.tools.session_state import ScreeningMemory, SessionState, session_key
from opencouch.tools.testing import ToolsHarness, new_session_id


async def _state_keys(redis: Redis, session_id: str) -> list[bytes]:
    return sorted([key async for key in redis.scan_iter(session_key(session_id, "*"))])


async def _until_only_screening(redis: Redis, session_id: str) -> list[bytes]:
    screening = session_key(session_id, "screening").encode()
    for _ in range(100):
        if (left := await _state_keys(redis, session_id)) == [screening]:
            return left
        await asyncio.sleep(0.05)
    return await _state_keys(redis, session_id)


async def test_a_closed_sessions_lookup_and_exercise_are_dropped_and_no_other_sessions(
    tools: ToolsHarness, redis_client: Redis
) -> None:
    """Its screening memory stays: the classifier may still be reading the session's last
    persistent turns from JetStream, and a "yes" after a safety check needs it."""
    other = new_session_id()
    screening = ScreeningMemory(safety_check_pending=True, ideation_earlier=True)
    await SessionState(redis_client, 3600).save_screening_memory(tools.session_id, screening)
    for session_id in (tools.session_id, other):
        lookup = await tools.call(
            "lookup_crisis_resources", message="I live in New South Wales", session_id=session_id
        )
        assert lookup.ok
        exercise = await tools.call(
            "start_guided_exercise",
            {"exercise_type": "grounding_box_breathing"},
            session_id=session_id,
        )
        assert exercise.output["status"] == "ok"
    expected = sorted(
        session_key(tools.session_id, part).encode()
        for part in ("crisis_lookup", "exercise", "screening")
    )
    assert await _state_keys(redis_client, tools.session_id) == expected

    closed = SessionClosed(session_id=tools.session_id, memory_mode=MemoryMode.INCOGNITO)
    await tools.nc.publish(subjects.SESSION_CLOSED, closed.model_dump_json().encode())
    await flushed(tools.nc)

    assert await _until_only_screening(redis_client, tools.session_id) == [
        session_key(tools.session_id, "screening").encode()
    ]
    kept = await SessionState(redis_client, 3600).screening_memory(tools.session_id)
    assert kept == screening
    assert len(await _state_keys(redis_client, other)) == 2
    # A repeated close, or one for a session that kept nothing, is harmless.
    await tools.nc.publish(subjects.SESSION_CLOSED, closed.model_dump_json().encode())
    await tools.nc.publish(subjects.SESSION_CLOSED, b'{"session_id": "not a session"}')
    await flushed(tools.nc)
    after = await tools.call(
        "lookup_crisis_resources", message="I live in Canada", session_id=other
    )
    assert after.ok
    assert len(await _state_keys(redis_client, other)) == 2


async def test_state_expires_when_the_session_can_no_longer_call_tools(
    tools: ToolsHarness, redis_client: Redis
) -> None:
    """A tab closed without ending: the keys go a minute after the session's end that each call
    carries, not after the service's longest TTL (an hour in this harness)."""
    ends = int(time.time()) + 120
    await tools.call("lookup_crisis_resources", message="I live in Ohio", session_expires_at=ends)
    exercise = await tools.call(
        "start_guided_exercise",
        {"exercise_type": "grounding_box_breathing"},
        session_expires_at=ends,
    )
    assert exercise.output["status"] == "ok"
    for part in ("crisis_lookup", "exercise"):
        ttl = await redis_client.ttl(session_key(tools.session_id, part))
        assert 60 < ttl <= 180, (part, ttl)
    # Past its end already (a clock ahead of the gateway's): kept a moment, never forever.
    late = new_session_id()
    await tools.call(
        "lookup_crisis_resources",
        message="I live in Ohio",
        session_id=late,
        session_expires_at=int(time.time()) - 3600,
    )
    # (-2: already gone; -1, no expiry at all, would be the failure.)
    assert await redis_client.ttl(session_key(late, "crisis_lookup")) in (-2, 0, 1)
    # From a gateway that does not say when the session ends: the service's own limit.
    unknown = new_session_id()
    await tools.call("lookup_crisis_resources", message="I live in Ohio", session_id=unknown)
    assert 3000 < await redis_client.ttl(session_key(unknown, "crisis_lookup")) <= 3600
