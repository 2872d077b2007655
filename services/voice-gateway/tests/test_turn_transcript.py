"""The recent transcript a turn carries: sent on with an incognito turn's words to the crisis
screen (core NATS, kept nowhere), never put into a persistent turn's event, and no part of a
turn's identity, so a retry stays a retry."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from opencouch.contracts import subjects
from opencouch.contracts.events import CrisisScreen
from opencouch.voice_gateway.testing import API, bearer, open_session, published, unique

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
        # A retry, even with another window, is the same turn: answered, not screened again.
        again = gateway.post(
            f"{API}/turn", json={**body, "transcript": SAFETY_CHECK[1:]}, headers=bearer(session)
        )
        assert (again.status_code, again.json()) == (200, reply.json())
        messages = await screens.settled(1)
    assert len(messages) == 1
    screen = CrisisScreen.model_validate_json(messages[0])
    assert screen.user_text == "Yes."
    assert [line.model_dump() for line in screen.transcript] == SAFETY_CHECK


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
