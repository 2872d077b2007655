"""The recent transcript a turn carries: sent on with an incognito turn's words to the crisis
screen (core NATS, kept nowhere), never put into a persistent turn's event, and no part of a
turn's identity, so a retry stays a retry."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from fastapi.testclient import TestClient
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from opencouch.contracts import subjects
from opencouch.contracts.events import CrisisScreen
from opencouch.voice_gateway.testing import API, bearer, open_session, unique

SAFETY_CHECK = [
    {"role": "user", "text": "Everything feels pointless lately."},
    {"role": "assistant", "text": "Are you thinking about suicide?"},
]


def turn(**body: Any) -> dict[str, Any]:
    return {
        "client_turn_id": unique("turn"),
        "user_text": "Yes.",
        "assistant_text": "Thank you for telling me.",
        **body,
    }


async def collected(nc: NATS, seen: list[bytes], count: int) -> list[bytes]:
    """The messages seen so far, once there are ``count`` (and a moment for any extra)."""
    await nc.flush()
    for _ in range(100):
        if len(seen) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    return list(seen)


async def test_an_incognito_turn_is_screened_with_the_transcript_sent_with_it(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    session = open_session(gateway)
    nc = await nats.connect(gateway_nats_url)
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        if session["session_id"].encode() in msg.data:
            seen.append(msg.data)

    try:
        await nc.subscribe(subjects.CRISIS_SCREEN, cb=keep)
        await nc.flush()
        body = turn(transcript=SAFETY_CHECK)
        reply = gateway.post(f"{API}/turn", json=body, headers=bearer(session))
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is False
        # A retry, even with another window, is the same turn: answered, not screened again.
        again = gateway.post(
            f"{API}/turn", json={**body, "transcript": SAFETY_CHECK[1:]}, headers=bearer(session)
        )
        assert (again.status_code, again.json()) == (200, reply.json())
        messages = await collected(nc, seen, 1)
    finally:
        await nc.close()
    assert len(messages) == 1
    screen = CrisisScreen.model_validate_json(messages[0])
    assert screen.user_text == "Yes."
    assert [line.model_dump() for line in screen.transcript] == SAFETY_CHECK


async def test_a_persistent_turn_keeps_no_transcript_and_its_retry_is_the_same_turn(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    nc = await nats.connect(gateway_nats_url)
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        if session["session_id"].encode() in msg.data:
            seen.append(msg.data)

    try:
        await nc.subscribe(subjects.TURN_RECORDED, cb=keep)
        await nc.subscribe(subjects.CRISIS_SCREEN, cb=keep)
        await nc.flush()
        body = turn(transcript=SAFETY_CHECK)
        reply = gateway.post(f"{API}/turn", json=body, headers=bearer(session))
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is True
        for retry in (
            {**body, "transcript": []},
            {k: v for k, v in body.items() if k != "transcript"},
        ):
            again = gateway.post(f"{API}/turn", json=retry, headers=bearer(session))
            assert (again.status_code, again.json()) == (200, reply.json())
        changed = gateway.post(
            f"{API}/turn", json={**body, "user_text": "No."}, headers=bearer(session)
        )
        assert changed.status_code == 409
        messages = await collected(nc, seen, 1)
    finally:
        await nc.close()
    assert len(messages) == 1, "one TurnRecorded, and no crisis screen for a persistent turn"
    assert b'"transcript"' not in messages[0]
    assert not any(line["text"].encode() in messages[0] for line in SAFETY_CHECK)


def test_a_transcript_over_its_bounds_is_a_422_that_claims_nothing(gateway: TestClient) -> None:
    session = open_session(gateway)
    body = turn(transcript=[{"role": "user", "text": "x" * 2000}] * 21)
    reply = gateway.post(f"{API}/turn", json=body, headers=bearer(session))
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "invalid_request"
    fits = gateway.post(
        f"{API}/turn", json={**body, "transcript": SAFETY_CHECK}, headers=bearer(session)
    )
    assert fits.status_code == 200, fits.text
