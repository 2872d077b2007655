"""The recent transcript a turn carries: sent on with an incognito turn's words to the crisis
screen (core NATS, kept nowhere), never put into a persistent turn's event, and no part of a
turn's identity, so a retry stays a retry."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.events import CrisisScreen
from opencouch.contracts.voice_api import TurnRequest
from opencouch.voice_gateway.testing import (
    API,
    bearer,
    open_session,
    published,
    session_store,
    unique,
)
from opencouch.voice_gateway.turns import turn_fingerprint
from opencouch.voice_gateway.voice_sessions import Caller, ClaimState

SAFETY_CHECK = [
    {"role": "user", "text": "Everything feels pointless lately."},
    {"role": "assistant", "text": "Are you thinking about suicide?"},
]


async def _claim_only(redis_url: str, session: dict[str, Any], body: dict[str, Any]) -> None:
    """Claim an incognito turn as its first request would, and do nothing more."""
    redis = Redis.from_url(redis_url)
    try:
        caller = Caller(session["session_id"], session["thread_id"], None, "127.0.0.1")
        body_print = turn_fingerprint(TurnRequest.model_validate(body))
        claim = await session_store(redis).claim_turn(
            caller, body["client_turn_id"], body_print, in_flight=False
        )
        assert claim.state is ClaimState.CLAIMED
    finally:
        await redis.aclose()


def turn(**body: Any) -> dict[str, Any]:
    return {
        "client_turn_id": unique("turn"),
        "user_text": "Yes.",
        "assistant_text": "Thank you for telling me.",
        **body,
    }


async def test_an_incognito_turn_is_screened_with_the_transcript_sent_with_it(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    session = open_session(gateway)
    async with published(
        gateway_nats_url, [subjects.CRISIS_SCREEN], {session["session_id"]}
    ) as screens:
        body = turn(transcript=SAFETY_CHECK)
        reply = gateway.post(f"{API}/turn", json=body, headers=bearer(session))
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is False
        # A retry, even with another window, is the same turn: answered the same, and screened
        # again, marked as sent again (the first request may have died before its screen).
        again = gateway.post(
            f"{API}/turn", json={**body, "transcript": SAFETY_CHECK[1:]}, headers=bearer(session)
        )
        assert (again.status_code, again.json()) == (200, reply.json())
        messages = await screens.settled(2)
    assert len(messages) == 2
    first, resent = (CrisisScreen.model_validate_json(message) for message in messages)
    assert (first.user_text, first.resent) == ("Yes.", False)
    assert [line.model_dump() for line in first.transcript] == SAFETY_CHECK
    assert (resent.client_turn_id, resent.resent) == (first.client_turn_id, True)
    assert [line.model_dump() for line in resent.transcript] == SAFETY_CHECK[1:]


async def test_an_incognito_turn_whose_claim_outlived_its_request_is_screened_on_retry(
    gateway: TestClient, gateway_nats_url: str, redis_url: str
) -> None:
    """The first request claimed the turn and never screened it (its gateway was killed, or
    Redis's reply to the claim was lost and it answered 503): the retry screens it."""
    session = open_session(gateway)
    body = turn(transcript=SAFETY_CHECK)
    await _claim_only(redis_url, session, body)
    async with published(
        gateway_nats_url, [subjects.CRISIS_SCREEN], {session["session_id"]}
    ) as screens:
        reply = gateway.post(f"{API}/turn", json=body, headers=bearer(session))
        assert reply.status_code == 200, reply.text
        messages = await screens.settled(1)
    assert len(messages) == 1
    screen = CrisisScreen.model_validate_json(messages[0])
    assert (screen.client_turn_id, screen.user_text) == (body["client_turn_id"], "Yes.")


async def test_a_persistent_turn_keeps_no_transcript_and_its_retry_is_the_same_turn(
    gateway: TestClient, gateway_nats_url: str
) -> None:
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    async with published(
        gateway_nats_url,
        [subjects.TURN_RECORDED, subjects.CRISIS_SCREEN],
        {session["session_id"]},
    ) as sent:
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
        messages = await sent.settled(1)
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
