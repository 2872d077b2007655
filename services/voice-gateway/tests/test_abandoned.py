"""Sessions nobody ended (a tab closed) are ended by the gateway once no token could end them:
as an ``/end`` with no body would, so a persistent one is finalized and saved, exactly once.
Against real NATS and Redis; the sweep is called in the gateway's own event loop, with the
entry made due in Redis rather than waiting out an hour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.events import SessionClosed, SessionEnded
from opencouch.voice_gateway.abandoned import LEASE_SECONDS, end_abandoned
from opencouch.voice_gateway.testing import (
    API,
    FakeOwners,
    GatewayFactory,
    bearer,
    open_session,
    published,
    session_store,
    unique,
)
from opencouch.voice_gateway.voice_sessions import (
    ABANDON_MARGIN_SECONDS,
    UNENDED_KEY,
    Unended,
    redis_key,
)


@pytest.fixture
def redis(redis_url: str) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def sweep(gateway: TestClient) -> int:
    """One pass of the sweep, in the gateway's event loop; how many it ended.

    Redis is shared by the whole run and the sweep takes everything due, so entries of earlier
    tests (an end that failed is due again after its lease) can be ended by the same pass: a
    test counts only its own entries, from the events published for them and the set."""
    ended: int = gateway.portal.call(end_abandoned, gateway.app.state.gateway)  # type: ignore[union-attr, attr-defined]
    return ended


def make_due(redis: SyncRedis, key: str) -> None:
    # Changed, not added: the entry must already be waiting.
    assert redis.zadd(UNENDED_KEY, {key: time.time() - 1}, xx=True, ch=True) == 1, "not waiting"


def session_key(session: dict[str, Any]) -> str:
    return redis_key("vs", session["session_id"])


def record_turns(gateway: TestClient, session: dict[str, Any], count: int) -> None:
    for _ in range(count):
        turn = {"client_turn_id": unique("turn"), "user_text": "hi", "assistant_text": "hello"}
        reply = gateway.post(f"{API}/turn", json=turn, headers=bearer(session))
        assert reply.status_code == 200, reply.text


def dropped_call(gateway: TestClient, user: str, turns: int = 0) -> tuple[dict[str, Any], str]:
    """A persistent session ended as ``continued`` (its call dropped), and its conversation's
    entry in the unended set."""
    dropped = open_session(gateway, user_id=user, memory_mode="persistent")
    record_turns(gateway, dropped, turns)
    ended = gateway.post(f"{API}/end", json={"continued": True}, headers=bearer(dropped))
    assert ended.status_code == 202, ended.text
    return dropped, redis_key("deferred", f"user:{user}", dropped["thread_id"])


def ends_of(seen: list[bytes]) -> dict[str, SessionEnded]:
    events = [SessionEnded.model_validate_json(data) for data in seen if b'"save"' in data]
    by_session = {event.session_id: event for event in events}
    assert len(by_session) == len(events), "a session was ended twice"
    return by_session


async def swept_by_another(
    make_gateway: GatewayFactory,
    gateway_nats_url: str,
    redis: SyncRedis,
    due: list[str],
    sessions: set[str],
) -> dict[str, SessionEnded]:
    """Make ``due`` due and sweep on another, healthy gateway: the ends published for
    ``sessions``, one each."""
    other = make_gateway()
    async with published(gateway_nats_url, [subjects.SESSION_ENDED], sessions) as seen:
        for key in due:
            make_due(redis, key)
        sweep(other)
        messages = await seen.settled(len(sessions))
    return ends_of(messages)


async def test_a_session_nobody_ended_is_finalized_once_no_token_could_end_it(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    gateway = make_gateway()
    session = open_session(gateway, user_id=unique("user"), memory_mode="persistent")
    record_turns(gateway, session, 2)
    key = session_key(session)
    # Waiting for the last moment a token could end it: the session's expiry, the grace, a margin.
    expires = int(redis.hget(key, "session_expires_at") or 0)
    grace = gateway.app.state.gateway.settings.token_grace_seconds  # type: ignore[attr-defined]
    assert redis.zscore(UNENDED_KEY, key) == expires + grace + ABANDON_MARGIN_SECONDS

    async with published(
        gateway_nats_url, [subjects.SESSION_ENDED, subjects.SESSION_CLOSED], {session["session_id"]}
    ) as seen:
        sweep(gateway)  # not due yet: left alone
        assert await seen.settled(1) == []
        make_due(redis, key)
        assert sweep(gateway) >= 1
        sweep(gateway)  # ended: nothing more to do for it
        messages = await seen.settled(2)

    (event,) = ends_of(messages).values()
    assert (event.session_id, event.save, event.feedback, event.expected_turn_count) == (
        session["session_id"],
        True,
        None,
        2,
    )
    assert [
        SessionClosed.model_validate_json(m).session_id for m in messages if b'"save"' not in m
    ] == [session["session_id"]]
    assert redis.zscore(UNENDED_KEY, key) is None
    assert 'opencouch_voice_sessions_abandoned_total{kind="session"}' in generate_latest().decode()
    # Closed like any end.
    late = gateway.post(
        f"{API}/tools",
        json={"tool_name": "wait_for_user", "call_id": unique("call"), "arguments": {}},
        headers=bearer(session),
    )
    assert (late.status_code, late.json()["error"]["code"]) == (409, "session_ended")


async def test_an_incognito_session_nobody_ended_only_has_its_close_announced(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    gateway = make_gateway()
    session = open_session(gateway, user_id=unique("user"))
    async with published(
        gateway_nats_url, [subjects.SESSION_ENDED, subjects.SESSION_CLOSED], {session["session_id"]}
    ) as seen:
        make_due(redis, session_key(session))
        sweep(gateway)
        messages = await seen.settled(1)
    assert ends_of(messages) == {}
    (closed,) = [SessionClosed.model_validate_json(m) for m in messages]
    assert (closed.session_id, closed.memory_mode) == (session["session_id"], "incognito")


async def test_a_session_its_page_ended_is_not_waited_for(
    gateway: TestClient, redis: SyncRedis
) -> None:
    for body in ({}, {"continued": True}):
        session = open_session(gateway, user_id=unique("user"), memory_mode="persistent")
        assert redis.zscore(UNENDED_KEY, session_key(session)) is not None
        ended = gateway.post(f"{API}/end", json=body, headers=bearer(session))
        assert ended.status_code in (200, 202), ended.text
        assert redis.zscore(UNENDED_KEY, session_key(session)) is None


async def test_a_dropped_call_whose_conversation_never_went_on_is_finalized(
    gateway: TestClient, gateway_nats_url: str, redis: SyncRedis
) -> None:
    started = time.time()
    dropped, conversation = dropped_call(gateway, unique("user"), turns=1)
    settings = gateway.app.state.gateway.settings  # type: ignore[attr-defined]
    waits_until = redis.zscore(UNENDED_KEY, conversation)
    assert waits_until is not None
    assert waits_until >= int(started) + settings.max_session_seconds + settings.token_grace_seconds

    async with published(
        gateway_nats_url, [subjects.SESSION_ENDED], {dropped["session_id"]}
    ) as seen:
        sweep(gateway)
        assert await seen.settled(1) == []  # not due yet
        make_due(redis, conversation)
        assert sweep(gateway) >= 1
        messages = await seen.settled(1)
    (event,) = ends_of(messages).values()
    assert (event.session_id, event.save, event.expected_turn_count) == (
        dropped["session_id"],
        True,
        1,
    )
    assert redis.zscore(UNENDED_KEY, conversation) is None
    assert not redis.exists(conversation)


async def test_a_later_session_of_the_conversation_keeps_its_dropped_ones_waiting(
    gateway: TestClient, gateway_nats_url: str, redis: SyncRedis
) -> None:
    user = unique("user")
    dropped, conversation = dropped_call(gateway, user)
    redis.zadd(UNENDED_KEY, {conversation: time.time() + 5})  # about to be due...
    current = open_session(
        gateway, thread_id=dropped["thread_id"], user_id=user, memory_mode="persistent"
    )
    # ...until the session the conversation went on in could no longer end it.
    assert redis.zscore(UNENDED_KEY, conversation) == redis.zscore(
        UNENDED_KEY, session_key(current)
    )
    record_turns(gateway, current, 1)

    # Nobody ends the current one either: its end takes the dropped one along, both saved.
    ids = {dropped["session_id"], current["session_id"]}
    async with published(gateway_nats_url, [subjects.SESSION_ENDED], ids) as seen:
        make_due(redis, session_key(current))
        sweep(gateway)
        messages = await seen.settled(2)
    events = ends_of(messages)
    assert {sid: (e.save, e.expected_turn_count) for sid, e in events.items()} == {
        dropped["session_id"]: (True, 0),
        current["session_id"]: (True, 1),
    }
    assert redis.zscore(UNENDED_KEY, conversation) is None


async def test_an_end_that_could_not_be_published_is_finished_by_the_sweep(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    from opencouch.testing.servers import nats_server
    from opencouch.voice_gateway.testing import FakeOwners

    with nats_server(private=True) as url, FakeOwners(url):
        unlucky = make_gateway(nats_url=url)
        session = open_session(unlucky, user_id=unique("user"), memory_mode="persistent")
        record_turns(unlucky, session, 1)
    # NATS is gone: the end cannot be stored, says so, and the page never retries (tab closed).
    down = unlucky.post(f"{API}/end", json={}, headers=bearer(session))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "service_unavailable")
    assert redis.zscore(UNENDED_KEY, session_key(session)) is not None

    ends = await swept_by_another(
        make_gateway, gateway_nats_url, redis, [session_key(session)], {session["session_id"]}
    )
    (event,) = ends.values()
    assert (event.save, event.expected_turn_count) == (True, 1)
    assert redis.zscore(UNENDED_KEY, session_key(session)) is None


async def test_an_end_without_saving_that_failed_is_finished_by_the_sweep_without_saving(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    from opencouch.testing.servers import nats_server
    from opencouch.voice_gateway.testing import FakeOwners

    user = unique("user")
    with nats_server(private=True) as url, FakeOwners(url):
        unlucky = make_gateway(nats_url=url)
        dropped, conversation = dropped_call(unlucky, user, turns=1)
        current = open_session(
            unlucky, thread_id=dropped["thread_id"], user_id=user, memory_mode="persistent"
        )
        record_turns(unlucky, current, 2)
    # NATS is gone when the person ends the conversation without saving; the page gives up.
    choice = {"save": False, "feedback": "negative"}
    down = unlucky.post(f"{API}/end", json=choice, headers=bearer(current))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "service_unavailable")

    ends = await swept_by_another(
        make_gateway,
        gateway_nats_url,
        redis,
        [conversation, session_key(current)],
        {dropped["session_id"], current["session_id"]},
    )
    # Neither the session ended nor the one its conversation dropped is kept: as chosen.
    assert {(e.session_id, e.save, e.feedback) for e in ends.values()} == {
        (dropped["session_id"], False, "negative"),
        (current["session_id"], False, "negative"),
    }


async def test_a_dropped_session_ended_for_good_when_its_end_fails_is_still_finalized(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    from opencouch.testing.servers import nats_server
    from opencouch.voice_gateway.testing import FakeOwners

    with nats_server(private=True) as url, FakeOwners(url):
        unlucky = make_gateway(nats_url=url)
        dropped, _ = dropped_call(unlucky, unique("user"), turns=1)
    # The page could not reconnect ("disconnected"); the person presses End on the dropped
    # session, and NATS is gone: the end is refused, and the sweep is left to end it.
    down = unlucky.post(f"{API}/end", json={"save": False}, headers=bearer(dropped))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "service_unavailable")

    ends = await swept_by_another(
        make_gateway, gateway_nats_url, redis, [session_key(dropped)], {dropped["session_id"]}
    )
    (event,) = ends.values()
    assert (event.session_id, event.save, event.expected_turn_count) == (
        dropped["session_id"],
        False,
        1,
    )
    assert redis.zscore(UNENDED_KEY, session_key(dropped)) is None


async def test_a_dropped_conversation_the_sweep_could_not_finalize_is_tried_again_soon(
    make_gateway: GatewayFactory, gateway_nats_url: str, redis: SyncRedis
) -> None:
    from opencouch.testing.servers import nats_server
    from opencouch.voice_gateway.testing import FakeOwners

    with nats_server(private=True) as url, FakeOwners(url):
        unlucky = make_gateway(nats_url=url)
        dropped, conversation = dropped_call(unlucky, unique("user"), turns=1)
    # NATS is gone when the sweep comes: the sessions go back, due again after a lease.
    make_due(redis, conversation)
    sweep(unlucky)
    assert redis.hexists(conversation, dropped["session_id"])
    retry_at = redis.zscore(UNENDED_KEY, conversation)
    assert retry_at is not None
    assert time.time() < retry_at <= time.time() + LEASE_SECONDS

    other = make_gateway()
    async with published(
        gateway_nats_url, [subjects.SESSION_ENDED], {dropped["session_id"]}
    ) as seen:
        make_due(redis, conversation)
        assert sweep(other) >= 1
        messages = await seen.settled(1)
    (event,) = ends_of(messages).values()
    assert (event.save, event.expected_turn_count) == (True, 1)
    assert redis.zscore(UNENDED_KEY, conversation) is None


async def test_an_erasure_leaves_nothing_of_the_owner_to_end(
    gateway: TestClient, redis: SyncRedis, owners: FakeOwners
) -> None:
    user = unique("user")
    _, conversation = dropped_call(gateway, user)
    other = open_session(gateway, user_id=user, memory_mode="persistent")
    # One past its expiry, still waiting for an end: no longer counted as live, still the owner's
    # when the next session starts.
    redis.zadd(redis_key("live", f"user:{user}"), {other["session_id"]: time.time() - 10})
    current = open_session(gateway, user_id=user, memory_mode="persistent")
    erased = gateway.post(
        f"{API}/memory/erase", json={"confirm": "erase everything"}, headers=bearer(current)
    )
    assert erased.status_code == 200, erased.text
    for key in (conversation, session_key(other), session_key(current)):
        assert redis.zscore(UNENDED_KEY, key) is None, key
    # Memory is told of every session it closed, turns stored or not, the asking one first.
    (asked,) = [erasure for erasure in owners.erasures if erasure.user_id == user]
    assert asked.session_ids[0] == current["session_id"]
    assert {other["session_id"], current["session_id"]} <= set(asked.session_ids)


async def test_a_session_past_its_expiry_does_not_count_against_the_live_cap(
    make_gateway: GatewayFactory, redis: SyncRedis
) -> None:
    gateway = make_gateway(max_sessions_per_user=1)
    user = unique("user")
    first = open_session(gateway, user_id=user, memory_mode="persistent")
    refused = gateway.post(f"{API}/session", json={"thread_id": unique("thread"), "user_id": user})
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_sessions")
    redis.zadd(redis_key("live", f"user:{user}"), {first["session_id"]: time.time() - 1})
    open_session(gateway, user_id=user, memory_mode="persistent")


async def test_each_due_entry_is_leased_to_one_sweeper_at_a_time(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    store = session_store(client)
    keys = [redis_key("vs", unique("vs_lease")) for _ in range(30)]
    try:
        now = time.time()
        await client.zadd(UNENDED_KEY, dict.fromkeys(keys, now - 5))
        takes = await asyncio.gather(*(store.due(now, 120, 7) for _ in range(10)))
        taken = [unended.key for take in takes for unended in take if unended.key in keys]
        assert sorted(taken) == sorted(keys)
        # Leased: not due again until the lease runs out, then due again.
        assert [u for u in await store.due(now + 60, 120, 100) if u.key in keys] == []
        again = await store.due(now + 121, 120, 100)
        assert sorted(u.key for u in again if u.key in keys) == sorted(keys)
    finally:
        await client.zrem(UNENDED_KEY, *keys)
        await client.aclose()


def test_unended_entries_name_a_session_or_a_conversation() -> None:
    session = Unended.parse(redis_key("vs", "vs_1:2"))
    assert (session.session_id, session.owner_id) == ("vs_1:2", None)
    conversation = Unended.parse(redis_key("deferred", "user:a b", "thread:1"))
    assert (conversation.owner_id, conversation.thread_id, conversation.session_id) == (
        "user:a b",
        "thread:1",
        None,
    )
    with pytest.raises(ValueError, match="not an unended key"):
        Unended.parse("ocv:thread:x")


def test_a_session_whose_start_failed_is_never_ended_by_the_sweep(
    make_gateway: GatewayFactory, redis: SyncRedis
) -> None:
    """``/session`` records the session before it mints the client secret. A mint that fails
    (Realtime unreachable) answers 503, and the session no browser ever held must not wait in
    the unended set: the sweep would end it an hour later, announcing the end of a session
    nobody had, and finalizing the conversation's earlier sessions while it may go on."""
    from opencouch.testing.servers import free_port

    gateway = make_gateway(emulator_base_url=f"http://127.0.0.1:{free_port()}/v1")
    before = set(redis.zrange(UNENDED_KEY, 0, -1))
    reply = gateway.post(
        f"{API}/session", json={"thread_id": unique("thread"), "memory_mode": "persistent"}
    )
    assert reply.status_code == 503, reply.text
    assert set(redis.zrange(UNENDED_KEY, 0, -1)) - before == set()
