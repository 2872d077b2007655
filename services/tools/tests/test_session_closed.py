"""A closed session's tool state leaves Redis when the gateway says so, not a day later."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionClosed
from opencouch.tools.session_state import session_key
from opencouch.tools.testing import ToolsHarness, new_session_id


async def _state_keys(redis: Redis, session_id: str) -> list[bytes]:
    return sorted([key async for key in redis.scan_iter(session_key(session_id, "*"))])


async def _until_gone(redis: Redis, session_id: str) -> list[bytes]:
    for _ in range(100):
        if not (left := await _state_keys(redis, session_id)):
            return left
        await asyncio.sleep(0.05)
    return await _state_keys(redis, session_id)


async def test_a_closed_sessions_lookup_and_exercise_are_dropped_and_no_other_sessions(
    tools: ToolsHarness, redis_client: Redis
) -> None:
    other = new_session_id()
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
        session_key(tools.session_id, part).encode() for part in ("crisis_lookup", "exercise")
    )
    assert await _state_keys(redis_client, tools.session_id) == expected

    closed = SessionClosed(session_id=tools.session_id, memory_mode=MemoryMode.INCOGNITO)
    await tools.nc.publish(subjects.SESSION_CLOSED, closed.model_dump_json().encode())
    await tools.nc.flush()

    assert await _until_gone(redis_client, tools.session_id) == []
    assert len(await _state_keys(redis_client, other)) == 2
    # A repeated close, or one for a session that kept nothing, is harmless.
    await tools.nc.publish(subjects.SESSION_CLOSED, closed.model_dump_json().encode())
    await tools.nc.publish(subjects.SESSION_CLOSED, b'{"session_id": "not a session"}')
    await tools.nc.flush()
    after = await tools.call(
        "lookup_crisis_resources", message="I live in Canada", session_id=other
    )
    assert after.ok
    assert len(await _state_keys(redis_client, other)) == 2
