"""A conversation that goes on in a new voice session after its call dropped: the old session,
ended with ``continued``, is closed at once but finalized only by the conversation's last
``/end``, with that end's save and feedback. Against real NATS and Redis.

Every ``SessionEnded`` the gateway publishes is seen on core NATS too, duplicates the stream
would drop included: so a second publish for one session would show here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from fastapi.testclient import TestClient
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.runtime.messaging import flushed
from opencouch.voice_gateway.testing import (
    API,
    GatewayFactory,
    LiveGateway,
    bearer,
    open_session,
    session_store,
    unique,
)
from opencouch.voice_gateway.tokens import VoiceSessionClaims


class EndsSeen:
    """Every SessionEnded published on the gateway's NATS while the test runs."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.events: list[SessionEnded] = []

    async def handle(self, msg: Msg) -> None:
        self.events.append(SessionEnded.model_validate_json(msg.data))

    def of(self, *session_ids: str) -> list[SessionEnded]:
        return [event for event in self.events if event.session_id in session_ids]

    async def settle(self) -> None:
        """Whatever the gateway published before now has arrived here."""
        await flushed(self.nc)
        await asyncio.sleep(0.3)

    async def stored(self) -> int:
        """SessionEnded messages the events stream holds."""
        info = await self.nc.jetstream().stream_info(
            subjects.EVENTS_STREAM, subjects_filter=subjects.SESSION_ENDED
        )
        return sum((info.state.subjects or {}).values())


@pytest.fixture
async def ends(gateway_nats_url: str) -> AsyncIterator[EndsSeen]:
    nc = await nats.connect(gateway_nats_url)
    seen = EndsSeen(nc)
    sub = await nc.subscribe(subjects.SESSION_ENDED, cb=seen.handle)
    await flushed(nc)
    try:
        yield seen
    finally:
        await sub.unsubscribe()
        await nc.close()


def turn() -> dict[str, Any]:
    return {
        "client_turn_id": unique("turn"),
        "user_text": "I had a long day.",
        "assistant_text": "Tell me about it.",
    }


def tool_call() -> dict[str, Any]:
    return {"tool_name": "wait_for_user", "call_id": unique("call"), "arguments": {}}


def record_turns(gateway: TestClient, session: dict[str, Any], count: int) -> None:
    for _ in range(count):
        reply = gateway.post(f"{API}/turn", json=turn(), headers=bearer(session))
        assert reply.status_code == 200, reply.text


def dropped_and_resumed(gateway: TestClient, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A persistent session with one turn, ended as ``continued`` (its call dropped), and the
    session the conversation goes on in."""
    dropped = open_session(gateway, user_id=user, memory_mode="persistent")
    record_turns(gateway, dropped, 1)
    assert (
        gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(dropped))
    ).status_code == 202
    current = open_session(
        gateway, thread_id=dropped["thread_id"], user_id=user, memory_mode="persistent"
    )
    return dropped, current


async def test_a_continued_end_closes_the_session_now_and_the_last_end_finalizes_it(
    make_gateway: GatewayFactory, ends: EndsSeen
) -> None:
    gateway = make_gateway(max_sessions_per_user=1)
    user, thread = unique("user"), unique("thread")
    first = open_session(gateway, thread_id=thread, user_id=user, memory_mode="persistent")
    record_turns(gateway, first, 2)

    stored_before = await ends.stored()
    deferred = gateway.post(
        f"{API}/end", json={"continued": True, "save": True}, headers=bearer(first)
    )
    assert deferred.status_code == 202, deferred.text
    body = deferred.json()
    assert (body["finalized"], body["status"], body["turn_count"]) == (False, "pending", 2)
    assert "finalized when the conversation ends" in body["detail"]
    # Closed like any end: no new turn or tool call, and its live-session slot is free.
    for path, request in (("/turn", turn()), ("/tools", tool_call())):
        late = gateway.post(f"{API}{path}", json=request, headers=bearer(first))
        assert (late.status_code, late.json()["error"]["code"]) == (409, "session_ended")
    second = open_session(gateway, thread_id=thread, user_id=user, memory_mode="persistent")
    # ...but not finalized: no end was published for it.
    await ends.settle()
    assert ends.of(first["session_id"]) == []
    assert await ends.stored() == stored_before

    record_turns(gateway, second, 3)
    last = gateway.post(
        f"{API}/end", json={"save": False, "feedback": "negative"}, headers=bearer(second)
    )
    assert last.status_code in (200, 202), last.text
    assert last.json()["session_id"] == second["session_id"]
    await ends.settle()
    published = {
        event.session_id: (event.save, event.feedback, event.expected_turn_count, event.user_id)
        for event in ends.of(first["session_id"], second["session_id"])
    }
    assert published == {
        first["session_id"]: (False, "negative", 2, user),
        second["session_id"]: (False, "negative", 3, user),
    }
    assert len(ends.of(first["session_id"])) == 1
    assert await ends.stored() == stored_before + 2

    # Taken once: ending the conversation's last session again publishes nothing more for it.
    again = gateway.post(f"{API}/end", json={"save": True}, headers=bearer(second))
    assert again.status_code in (200, 202)
    await ends.settle()
    assert len(ends.of(first["session_id"])) == 1


async def test_a_deferred_session_ended_again_without_continued_is_finalized_normally(
    gateway: TestClient, ends: EndsSeen
) -> None:
    session = open_session(gateway, user_id=unique("user"), memory_mode="persistent")
    record_turns(gateway, session, 1)
    first = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(session))
    assert first.status_code == 202
    # A retry of the continued end is still deferred.
    retried = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(session))
    assert (retried.status_code, retried.json()["status"]) == (202, "pending")
    await ends.settle()
    assert ends.of(session["session_id"]) == []

    final = gateway.post(
        f"{API}/end", json={"save": True, "feedback": "positive"}, headers=bearer(session)
    )
    assert final.status_code in (200, 202), final.text
    await ends.settle()
    (event,) = ends.of(session["session_id"])
    assert (event.save, event.feedback, event.expected_turn_count) == (True, "positive", 1)


async def test_a_continued_end_arriving_after_the_end_that_decided_defers_nothing(
    gateway: TestClient, ends: EndsSeen
) -> None:
    # The person pressed End while the page reconnected: their deciding end went out while the
    # dropped session's own continued end was still being retried, and landed first. The
    # continued end deferred the session again, so the conversation's next end (or the sweep)
    # finalized it a second time, saved, over the person's "don't keep it".
    user = unique("user")
    session = open_session(gateway, user_id=user, memory_mode="persistent")
    record_turns(gateway, session, 1)
    decided = gateway.post(
        f"{API}/end", json={"save": False, "feedback": "negative"}, headers=bearer(session)
    )
    assert decided.status_code in (200, 202), decided.text
    late = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(session))
    assert late.status_code in (200, 202), late.text
    assert "finalized when the conversation ends" not in late.json()["detail"]

    resumed = open_session(
        gateway, thread_id=session["thread_id"], user_id=user, memory_mode="persistent"
    )
    last = gateway.post(f"{API}/end", json={"save": True}, headers=bearer(resumed))
    assert last.status_code in (200, 202), last.text
    await ends.settle()
    assert [(e.save, e.feedback) for e in ends.of(session["session_id"])] == [(False, "negative")]


async def test_an_end_with_no_body_ends_the_session_saved(
    gateway: TestClient, ends: EndsSeen
) -> None:
    # What the sweep does to a session nobody ended, as the docs say: a client that sends no
    # body (curl -X POST) was refused 422 "body: Field required" instead.
    session = open_session(gateway, user_id=unique("user"), memory_mode="persistent")
    record_turns(gateway, session, 1)
    ended = gateway.post(f"{API}/end", headers=bearer(session))
    assert ended.status_code in (200, 202), ended.text
    await ends.settle()
    (event,) = ends.of(session["session_id"])
    assert (event.save, event.feedback, event.expected_turn_count) == (True, None, 1)


def anonymous_call_dropped(gateway: TestClient) -> dict[str, Any]:
    """An anonymous persistent session with a turn, ended as continued (its call dropped)."""
    anonymous = open_session(gateway, memory_mode="persistent")
    record_turns(gateway, anonymous, 1)
    ended = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(anonymous))
    assert ended.status_code == 202
    return anonymous


async def test_another_owners_end_on_the_same_thread_does_not_finalize_them(
    gateway: TestClient, ends: EndsSeen
) -> None:
    # An anonymous thread, opened again by a signed-in user who holds its secret.
    anonymous = anonymous_call_dropped(gateway)
    thread, secret = anonymous["thread_id"], anonymous["thread_secret"]

    other = open_session(
        gateway,
        thread_id=thread,
        thread_secret=secret,
        user_id=unique("user"),
        memory_mode="persistent",
    )
    ended = gateway.post(f"{API}/end", json={"save": True}, headers=bearer(other))
    assert ended.status_code in (200, 202)
    await ends.settle()
    assert [e.session_id for e in ends.of(anonymous["session_id"], other["session_id"])] == [
        other["session_id"]
    ]

    # The user took the thread (a persistent session of theirs in it): the secret opens it no
    # more, so the anonymous owner's deferred session is left to the sweep, as a conversation
    # never gone on is.
    again = gateway.post(
        f"{API}/session",
        json={"thread_id": thread, "thread_secret": secret, "memory_mode": "persistent"},
    )
    assert again.status_code == 403
    assert ends.of(anonymous["session_id"]) == []


async def test_the_owners_own_next_session_takes_their_deferred_end(
    gateway: TestClient, ends: EndsSeen
) -> None:
    anonymous = anonymous_call_dropped(gateway)
    thread, secret = anonymous["thread_id"], anonymous["thread_secret"]
    # An incognito visit by a signed-in user who holds the secret leaves the thread as it was.
    visit = open_session(gateway, thread_id=thread, thread_secret=secret, user_id=unique("user"))
    assert gateway.post(f"{API}/end", json={}, headers=bearer(visit)).status_code == 200
    own = open_session(gateway, thread_id=thread, thread_secret=secret, memory_mode="persistent")
    assert gateway.post(f"{API}/end", json={"save": False}, headers=bearer(own)).status_code in (
        200,
        202,
    )
    await ends.settle()
    (event,) = ends.of(anonymous["session_id"])
    assert (event.save, event.user_id, event.expected_turn_count) == (False, None, 1)


async def test_continued_changes_nothing_in_incognito(gateway: TestClient, ends: EndsSeen) -> None:
    session = open_session(gateway, user_id=unique("user"))
    ended = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(session))
    assert ended.status_code == 200
    assert (ended.json()["finalized"], ended.json()["status"]) == (False, None)
    later = open_session(gateway, thread_id=session["thread_id"], user_id=session["user_id"])
    assert gateway.post(f"{API}/end", json={}, headers=bearer(later)).status_code == 200
    await ends.settle()
    assert ends.of(session["session_id"], later["session_id"]) == []


async def test_two_ends_racing_finalize_a_deferred_session_once(
    live_gateway: LiveGateway, ends: EndsSeen
) -> None:
    user, thread = unique("user"), unique("thread")
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:

        async def start() -> dict[str, Any]:
            reply = await http.post(
                f"{API}/session",
                json={"thread_id": thread, "user_id": user, "memory_mode": "persistent"},
            )
            assert reply.status_code == 200, reply.text
            session: dict[str, Any] = reply.json()
            return session

        async def end(session: dict[str, Any], **body: Any) -> int:
            reply = await http.post(f"{API}/end", json=body, headers=bearer(session))
            return reply.status_code

        dropped = await start()
        assert await end(dropped, continued=True) == 202
        racers = [await start(), await start()]
        statuses = await asyncio.gather(*(end(racer, save=False) for racer in racers))
    assert all(status in (200, 202) for status in statuses), statuses
    await ends.settle()
    (event,) = ends.of(dropped["session_id"])
    assert event.save is False  # the conversation's end, not the dropped call, decided
    assert len(ends.of(*(racer["session_id"] for racer in racers))) == 2


async def test_concurrent_takes_get_each_deferred_session_once(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    store = session_store(redis)
    now = int(time.time())
    thread, user = f"thread-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"

    def claims(user_id: str | None = user) -> VoiceSessionClaims:
        return VoiceSessionClaims(
            session_id=f"vs_{uuid.uuid4().hex}",
            thread_id=thread,
            user_id=user_id,
            memory_mode=MemoryMode.PERSISTENT,
            session_expires_at=now + 3600,
            expires_at=now + 3700,
        )

    try:
        deferred = [claims() for _ in range(20)]
        for number, session in enumerate(deferred):
            await store.defer_end(session, turn_count=number)
        stranger = claims(user_id=None)
        await store.defer_end(stranger, turn_count=1)

        takes = await asyncio.gather(
            *(store.take_deferred(f"user:{user}", thread) for _ in range(8))
        )
        taken = [entry.session_id for take in takes for entry in take]
        assert sorted(taken) == sorted(session.session_id for session in deferred)
        assert {entry.session_id: entry.turn_count for take in takes for entry in take} == {
            session.session_id: number for number, session in enumerate(deferred)
        }

        # What could not be published goes back, for a retry to take; the thread's other owner
        # keeps its own.
        first = takes[[bool(take) for take in takes].index(True)]
        await store.restore_deferred(f"user:{user}", thread, first)
        assert sorted(
            e.session_id for e in await store.take_deferred(f"user:{user}", thread)
        ) == sorted(e.session_id for e in first)
        (left,) = await store.take_deferred(stranger.owner_id, thread)
        assert (left.session_id, left.owner) == (stranger.session_id, f"thread:{thread}")
    finally:
        await store.forget_deferred_ends(f"user:{user}")
        await store.forget_deferred_ends(f"thread:{thread}")
        await redis.aclose()


async def test_a_deferred_session_whose_end_cannot_be_published_is_kept_for_the_retry(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    from opencouch.testing.servers import nats_server
    from opencouch.voice_gateway.testing import FakeOwners

    user = unique("user")
    with nats_server(private=True) as url, FakeOwners(url):
        gateway = make_gateway(nats_url=url)
        dropped, current = dropped_and_resumed(gateway, user)
    # NATS is gone: the end cannot be stored, and says so.
    down = gateway.post(f"{API}/end", json={"save": False}, headers=bearer(current))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "service_unavailable")

    redis = Redis.from_url(redis_url)
    store = session_store(redis)
    now = int(time.time())
    owner = VoiceSessionClaims(
        session_id=current["session_id"],
        thread_id=dropped["thread_id"],
        user_id=user,
        memory_mode=MemoryMode.PERSISTENT,
        session_expires_at=now + 3600,
        expires_at=now + 3700,
    )
    try:
        (kept,) = await store.take_deferred(owner.owner_id, owner.thread_id)
    finally:
        await redis.aclose()
    assert (kept.session_id, kept.turn_count) == (dropped["session_id"], 1)


async def test_an_erasure_drops_the_owners_deferred_sessions(
    gateway: TestClient, redis_url: str, ends: EndsSeen
) -> None:
    user = unique("user")
    dropped, current = dropped_and_resumed(gateway, user)
    erased = gateway.post(
        f"{API}/memory/erase", json={"confirm": "erase everything"}, headers=bearer(current)
    )
    assert erased.status_code == 200, erased.text
    # Its turns are gone: a later end must not finalize it.
    later = open_session(
        gateway, thread_id=dropped["thread_id"], user_id=user, memory_mode="persistent"
    )
    assert gateway.post(f"{API}/end", json={}, headers=bearer(later)).status_code in (200, 202)
    await ends.settle()
    assert ends.of(dropped["session_id"]) == []
