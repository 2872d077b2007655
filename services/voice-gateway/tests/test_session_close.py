"""Closing a voice session for ``/end``, on a real Redis: closed to new turns first, then the
turns still in flight are waited for and counted, so the finalizer waits for every turn the
gateway acknowledged (a turn acknowledged after the count would be left out of the session)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from opencouch.contracts.common import MemoryMode
from opencouch.voice_gateway.testing import session_store
from opencouch.voice_gateway.tokens import VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import (
    Caller,
    ClaimState,
    VoiceSessionStore,
    redis_key,
)


@dataclass(frozen=True)
class Opened:
    """A new persistent session of its own thread, recorded in Redis, and its caller."""

    redis: Redis
    store: VoiceSessionStore
    claims: VoiceSessionClaims
    caller: Caller

    @property
    def session(self) -> str:
        return self.claims.session_id

    async def inflight(self) -> int:
        return int(await self.redis.hget(redis_key("vs", self.session), "inflight") or 0)


@pytest.fixture
async def opened(redis_url: str) -> AsyncIterator[Opened]:
    redis = Redis.from_url(redis_url)
    store = session_store(redis)
    now = int(time.time())
    claims = VoiceSessionClaims(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id=f"thread-close-{uuid.uuid4().hex[:8]}",
        user_id=None,
        memory_mode=MemoryMode.PERSISTENT,
        session_expires_at=now + 3600,
        expires_at=now + 3700,
    )
    try:
        assert await store.create(claims, message_count=0, max_live=5)
        yield Opened(
            redis, store, claims, Caller(claims.session_id, claims.thread_id, None, "127.0.0.1")
        )
    finally:
        await redis.aclose()


async def test_end_closes_to_new_turns_then_counts_the_turns_in_flight(opened: Opened) -> None:
    store, claims, caller, session = opened.store, opened.claims, opened.caller, opened.session
    assert (await store.claim_turn(caller, "done", "fp-done")).state is ClaimState.CLAIMED
    await store.complete_turn(session, "done", "fp-done")
    # A turn JetStream has not acknowledged yet when /end arrives.
    assert (await store.claim_turn(caller, "flying", "fp-fly")).state is ClaimState.CLAIMED

    closing = asyncio.create_task(store.close(claims, settle_seconds=10))
    for _ in range(200):  # closed to new turns first...
        if await opened.redis.hget(redis_key("vs", session), "ended") == b"1":
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert not closing.done(), "the count must wait for the turn in flight"
    # Closed already: a new turn is refused while the one in flight may still finish.
    late = await store.claim_turn(caller, "late", "fp-late")
    assert late.state is ClaimState.ENDED
    await store.complete_turn(session, "flying", "fp-fly")
    closed = await asyncio.wait_for(closing, 10)

    assert (closed.existed, closed.was_open, closed.turn_count) == (True, True, 2)


async def test_a_turn_not_acknowledged_when_its_session_was_counted_is_never_acknowledged(
    opened: Opened,
) -> None:
    store, claims, caller, session = opened.store, opened.claims, opened.caller, opened.session
    # Two first tries that never finished: one died after its claim (its gateway killed),
    # one whose publish outlasts /end's wait.
    for turn in ("died", "slow"):
        assert (await store.claim_turn(caller, turn, f"fp-{turn}")).state is ClaimState.CLAIMED
    unkept = await store.claim_turn(caller, "unkept", "fp-unkept", in_flight=False)
    assert unkept.state is ClaimState.CLAIMED

    closed = await store.close(claims, settle_seconds=0.2)
    assert closed.turn_count == 0  # what the finalizer is told to wait for

    # The browser's retry of the first is refused, not acknowledged behind the count...
    assert (await store.claim_turn(caller, "died", "fp-died")).state is ClaimState.ENDED
    # ...and so is the slow one when its publish is finally acknowledged.
    assert await store.complete_turn(session, "slow", "fp-slow") == (-1, 0)
    assert await store.turn_count(session) == 0
    # A turn counted nowhere (incognito's) is still seen again, to be screened again.
    again = await store.claim_turn(caller, "unkept", "fp-unkept", in_flight=False)
    assert again.state is ClaimState.SEEN


async def test_a_turn_released_by_its_first_try_and_completed_by_its_retry_leaves_none_in_flight(
    opened: Opened,
) -> None:
    # The first try's publish timed out (503, claim released) while its retry, a duplicate of
    # the claim, published and completed: the claim's place in flight was given back twice,
    # so a later /end counted the session's turns without waiting for a turn really in flight.
    store, claims, caller, session = opened.store, opened.claims, opened.caller, opened.session
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.CLAIMED
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.SEEN
    await store.release_turn(session, "t1")  # the first try's 503
    assert await store.complete_turn(session, "t1", "fp-t1") == (2, 1)  # the retry's 200
    assert await opened.inflight() == 0

    # The next turn in flight when /end comes is waited for, and counted.
    assert (await store.claim_turn(caller, "t2", "fp-t2")).state is ClaimState.CLAIMED
    closing = asyncio.create_task(store.close(claims, settle_seconds=10))
    await asyncio.sleep(0.3)
    assert not closing.done(), "the count must wait for the turn in flight"
    assert await store.complete_turn(session, "t2", "fp-t2") == (4, 2)
    closed = await asyncio.wait_for(closing, 10)

    assert closed.turn_count == 2


async def test_a_turn_completed_by_its_first_try_and_its_retry_is_counted_once(
    opened: Opened,
) -> None:
    # Both requests of one turn published and completed it: counted once, none left in flight.
    store, caller, session = opened.store, opened.caller, opened.session
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.CLAIMED
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.SEEN
    assert await store.complete_turn(session, "t1", "fp-t1") == (2, 1)
    assert await store.complete_turn(session, "t1", "fp-t1") == (2, 0)
    assert await store.turn_count(session) == 1
    assert await opened.inflight() == 0


async def test_a_release_after_the_retry_acknowledged_the_turn_keeps_it(opened: Opened) -> None:
    # The first try's publish failed (503) after its retry had acknowledged the turn: its
    # release must not drop the acknowledged claim, or the next retry counts the turn again.
    store, claims, caller, session = opened.store, opened.claims, opened.caller, opened.session
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.CLAIMED
    assert (await store.claim_turn(caller, "t1", "fp-t1")).state is ClaimState.SEEN
    assert await store.complete_turn(session, "t1", "fp-t1") == (2, 1)
    await store.release_turn(session, "t1")
    again = await store.claim_turn(caller, "t1", "fp-t1")
    assert again.state is ClaimState.SEEN
    assert again.record is not None
    assert again.record["message_count"] == 2
    assert await opened.inflight() == 0
    assert (await store.close(claims, settle_seconds=0.1)).turn_count == 1
