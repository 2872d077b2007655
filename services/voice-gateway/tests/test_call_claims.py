"""Claiming a tool call on a real Redis: one script decides whether the session is known and
open, counts the call against every rate limit, and claims its id. A call over any limit is
refused and leaves every counter as it found it, so a refusal in one scope never uses up another
scope's budget."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from opencouch.contracts.common import MemoryMode
from opencouch.testing.infra import PrivateRedis
from opencouch.voice_gateway.tokens import VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import (
    Caller,
    CallLimit,
    CallLimits,
    ClaimState,
    VoiceSessionStore,
    redis_key,
)

HOUR = 3600


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def store_with(redis: Redis, *, session: int, thread: int, address: int) -> VoiceSessionStore:
    def per_hour(calls: int) -> CallLimit:
        return CallLimit(calls=calls, window_seconds=HOUR)

    return VoiceSessionStore(
        redis,
        session_seconds=HOUR,
        grace_seconds=60,
        thread_binding_seconds=HOUR,
        call_output_seconds=HOUR,
        call_limits=CallLimits(
            session=per_hour(session),
            user=per_hour(1000),
            thread=per_hour(thread),
            address=per_hour(address),
        ),
    )


async def started(store: VoiceSessionStore, thread_id: str, address: str) -> Caller:
    now = int(time.time())
    claims = VoiceSessionClaims(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id=thread_id,
        user_id=None,
        memory_mode=MemoryMode.PERSISTENT,
        session_expires_at=now + HOUR,
        expires_at=now + HOUR + 60,
    )
    assert await store.create(claims, message_count=0, max_live=10)
    return Caller(claims.session_id, thread_id, None, address)


async def counted(redis: Redis, scope: str, scope_id: str) -> int:
    """The calls counted for one scope, over all its windows."""
    total = 0
    async for key in redis.scan_iter(f"{redis_key('rate', scope, scope_id)}:*"):
        total += int(await redis.get(key) or 0)
    return total


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def claim(store: VoiceSessionStore, caller: Caller) -> ClaimState:
    return (await store.claim_call(caller, fresh("call"), "fp", 2)).state


async def test_a_call_over_the_session_limit_leaves_the_thread_its_budget(redis: Redis) -> None:
    store = store_with(redis, session=2, thread=3, address=1000)
    thread, address = fresh("thread"), fresh("10.0.0.1")
    first = await started(store, thread, address)
    assert [await claim(store, first) for _ in range(4)] == [
        ClaimState.CLAIMED,
        ClaimState.CLAIMED,
        ClaimState.LIMITED,
        ClaimState.LIMITED,
    ]
    assert await counted(redis, "session", first.session_id) == 2
    assert await counted(redis, "thread", thread) == 2
    # A second session of the thread still has the thread's third call.
    second = await started(store, thread, address)
    assert [await claim(store, second) for _ in range(2)] == [
        ClaimState.CLAIMED,
        ClaimState.LIMITED,
    ]
    assert await counted(redis, "thread", thread) == 3
    assert await counted(redis, "session", second.session_id) == 1


async def test_a_call_over_a_later_limit_gives_back_the_counts_taken_before_it(
    redis: Redis,
) -> None:
    # The address is counted after the session and the thread: their counts are given back.
    store = store_with(redis, session=1000, thread=1000, address=2)
    thread, address = fresh("thread"), fresh("10.0.0.2")
    caller = await started(store, thread, address)
    assert [await claim(store, caller) for _ in range(2)] == [ClaimState.CLAIMED] * 2
    refused = await store.claim_call(caller, fresh("call"), "fp", 2)
    assert refused.state is ClaimState.LIMITED
    assert 1 <= refused.retry_after <= HOUR
    assert await counted(redis, "session", caller.session_id) == 2
    assert await counted(redis, "thread", thread) == 2
    assert await counted(redis, "address", address) == 2


async def test_an_unknown_session_counts_nothing_and_an_ended_one_keeps_its_replays(
    redis: Redis,
) -> None:
    store = store_with(redis, session=1000, thread=1000, address=1000)
    unknown = Caller(f"vs_{uuid.uuid4().hex}", fresh("thread"), None, fresh("10.0.0.3"))
    assert await claim(store, unknown) is ClaimState.MISSING
    assert await counted(redis, "session", unknown.session_id) == 0

    caller = await started(store, fresh("thread"), fresh("10.0.0.4"))
    call_id = fresh("call")
    assert (await store.claim_call(caller, call_id, "fp", 2)).state is ClaimState.CLAIMED
    await redis.hset(redis_key("vs", caller.session_id), "ended", "1")
    replay = await store.claim_call(caller, call_id, "fp", 2)
    assert replay.state is ClaimState.SEEN
    assert not replay.conflicts_with("fp")
    assert await claim(store, caller) is ClaimState.ENDED
    # Every call was counted, the refused one too, as before any of them was decided.
    assert await counted(redis, "session", caller.session_id) == 3


async def test_a_call_claim_outlasts_the_calls_longest_run_by_a_second(redis: Redis) -> None:
    store = store_with(redis, session=1000, thread=1000, address=1000)
    caller = await started(store, fresh("thread"), fresh("10.0.0.5"))
    call_id = fresh("call")
    # A tool timeout of 8.9 s: the call may store its output 8.9 s after its claim.
    assert (await store.claim_call(caller, call_id, "fp", 8.9)).state is ClaimState.CLAIMED
    assert await redis.pttl(redis_key("call", caller.session_id, call_id)) > 9_800


async def test_a_restart_of_redis_keeps_the_claims_that_must_survive_it_and_no_more(
    restartable_redis: PrivateRedis,
) -> None:
    """A stateful call's claim and a turn's are on disk: after a restart a replay still finds
    them, so nothing runs twice. A pure call's claim (a replay of one is answered again anyway)
    and the rate counters (they matter for a minute) are kept in memory only, and cost no write
    to the append-only file."""
    restartable_redis.start()
    redis = Redis.from_url(restartable_redis.url)
    store = store_with(redis, session=100, thread=100, address=100)
    caller = await started(store, fresh("thread"), fresh("address"))
    sid = caller.session_id
    pure = await store.claim_call(caller, "call_pure", "fp-pure", 8, kept=True)
    stateful = await store.claim_call(caller, "call_stateful", "fp-stateful", 8)
    turn = await store.claim_turn(caller, "turn-1", "fp-turn")
    assert {pure.state, stateful.state, turn.state} == {ClaimState.CLAIMED}
    assert await counted(redis, "session", sid) == 3
    await redis.aclose()

    restartable_redis.restart()
    redis = Redis.from_url(restartable_redis.url)
    try:
        survived = [redis_key("vs", sid), redis_key("call", sid, "call_stateful")]
        assert await redis.exists(*survived, redis_key("turn", sid, "turn-1")) == 3
        assert await redis.exists(redis_key("call", sid, "call_pure")) == 0
        assert await counted(redis, "session", sid) == 0
        store = store_with(redis, session=100, thread=100, address=100)
        again = await store.claim_call(caller, "call_stateful", "fp-stateful", 8)
        assert again.state is ClaimState.SEEN
        # Asked again, the pure call is claimed (and answered) again: the same answer.
        again = await store.claim_call(caller, "call_pure", "fp-pure", 8, kept=True)
        assert again.state is ClaimState.CLAIMED
    finally:
        await redis.aclose()
