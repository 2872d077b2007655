"""``/end`` announces the close on core NATS, in both memory modes, so the tools service drops
the session's scratch state (crisis lookup, exercise) at once instead of a day later."""

from __future__ import annotations

from fastapi.testclient import TestClient

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionClosed
from opencouch.voice_gateway.testing import API, bearer, open_session, published, unique


async def test_every_end_announces_the_close_with_ids_only(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    incognito = open_session(gateway)
    persistent = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    ours = {incognito["session_id"], persistent["session_id"]}
    async with published(gateway_nats_url, [subjects.SESSION_CLOSED], ours) as closes:
        for session in (incognito, persistent):
            ended = gateway.post(f"{API}/end", json={}, headers=bearer(session))
            assert ended.status_code in (200, 202), ended.text
        # A retried end says it again: a lost first message is not the last word.
        again = gateway.post(f"{API}/end", json={}, headers=bearer(incognito))
        assert again.status_code == 200, again.text
        seen = [SessionClosed.model_validate_json(data) for data in await closes.settled(3)]
    assert sorted((c.session_id, c.memory_mode) for c in seen) == sorted(
        [
            (incognito["session_id"], MemoryMode.INCOGNITO),
            (incognito["session_id"], MemoryMode.INCOGNITO),
            (persistent["session_id"], MemoryMode.PERSISTENT),
        ]
    )
