"""``/end`` announces the close on core NATS, in both memory modes, so the tools service drops
the session's scratch state (crisis lookup, exercise) at once instead of a day later."""

from __future__ import annotations

import asyncio

import nats
from fastapi.testclient import TestClient
from nats.aio.msg import Msg

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionClosed
from opencouch.voice_gateway.testing import API, bearer, open_session, unique


async def test_every_end_announces_the_close_with_ids_only(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    incognito = open_session(gateway)
    persistent = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    ours = {incognito["session_id"], persistent["session_id"]}
    nc = await nats.connect(gateway_nats_url)
    seen: list[SessionClosed] = []

    async def keep(msg: Msg) -> None:
        closed = SessionClosed.model_validate_json(msg.data)
        if closed.session_id in ours:
            seen.append(closed)

    try:
        await nc.subscribe(subjects.SESSION_CLOSED, cb=keep)
        await nc.flush()
        for session in (incognito, persistent):
            ended = gateway.post(f"{API}/end", json={}, headers=bearer(session))
            assert ended.status_code in (200, 202), ended.text
        # A retried end says it again: a lost first message is not the last word.
        again = gateway.post(f"{API}/end", json={}, headers=bearer(incognito))
        assert again.status_code == 200, again.text
        for _ in range(100):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    assert sorted((c.session_id, c.memory_mode) for c in seen) == sorted(
        [
            (incognito["session_id"], MemoryMode.INCOGNITO),
            (incognito["session_id"], MemoryMode.INCOGNITO),
            (persistent["session_id"], MemoryMode.PERSISTENT),
        ]
    )
