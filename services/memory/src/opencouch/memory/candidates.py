"""Memory candidates held in Redis for the session they came from, until it is committed.

Per session, a hash of fact key -> candidate. Each session is also listed under its owner and
its thread, so erasing a user or a thread can find candidates not committed yet. Everything
expires: a session that is never committed leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from opencouch.memory.extraction import FactCandidate

_PREFIX = "memory:v1"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _held(session_id: str) -> str:
    return f"{_PREFIX}:candidates:{session_id}"


def _sessions_of(owner_or_thread: str) -> str:
    return f"{_PREFIX}:candidate-sessions:{owner_or_thread}"


@dataclass(frozen=True)
class HeldFact:
    """A candidate as held: its text, and the turn it was stated in."""

    key: str
    text: str
    thread_id: str
    client_turn_id: str
    stated_at: datetime


class CandidateStore:
    """The session's memory candidates, in Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def hold(
        self,
        *,
        session_id: str,
        thread_id: str,
        owner: str,
        client_turn_id: str,
        stated_at: datetime,
        facts: list[FactCandidate],
    ) -> list[str]:
        """Hold ``facts`` for the session; a fact already held keeps its first source. Returns
        the keys this call held that were not held before."""
        if not facts:
            return []
        held = _held(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for fact in facts:
                value = json.dumps(
                    {
                        "text": fact.text,
                        "thread_id": thread_id,
                        "client_turn_id": client_turn_id,
                        "stated_at": stated_at.isoformat(),
                    }
                )
                pipe.hsetnx(held, fact.key, value)
            pipe.expire(held, self._ttl)
            for index in {_sessions_of(owner), _sessions_of(f"thread:{thread_id}")}:
                pipe.sadd(index, session_id)
                pipe.expire(index, self._ttl)
            results = await pipe.execute()
        return [fact.key for fact, added in zip(facts, results, strict=False) if added]

    async def held(self, session_id: str) -> list[HeldFact]:
        """The facts held for the session, oldest statement first."""
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(_held(session_id))
        facts = []
        for key, value in raw.items():
            data = json.loads(value)
            facts.append(
                HeldFact(
                    key=_text(key),
                    text=data["text"],
                    thread_id=data["thread_id"],
                    client_turn_id=data["client_turn_id"],
                    stated_at=datetime.fromisoformat(data["stated_at"]),
                )
            )
        return sorted(facts, key=lambda fact: fact.stated_at)

    async def forget(self, session_id: str, key: str) -> bool:
        """Drop one held fact (the user deleted it before the session ended)."""
        return bool(await self._redis.hdel(_held(session_id), key))

    async def forget_everywhere(self, owner: str, key: str, session_id: str) -> int:
        """Drop one fact held for ``session_id`` and for every other session of the owner not
        committed yet (a dropped call carried on in a new session, a second tab): a saved fact
        the person deleted must not be saved back by any of them. How many held it."""
        members: set[bytes | str] = await self._redis.smembers(_sessions_of(owner))
        sessions = sorted({session_id, *(_text(member) for member in members)})
        async with self._redis.pipeline(transaction=True) as pipe:
            for session in sessions:
                pipe.hdel(_held(session), key)
            dropped: list[int] = await pipe.execute()
        return sum(dropped)

    async def drop_session(self, session_id: str) -> int:
        """Drop everything held for the session (committed, or not to be saved)."""
        held = _held(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hlen(held)
            pipe.delete(held)
            count, _ = await pipe.execute()
        return int(count)

    async def drop_everything_of(
        self, owners_or_threads: Sequence[str], session_ids: Sequence[str] = ()
    ) -> int:
        """Drop every held candidate of these owners or threads (``user:..``, ``thread:..``), and
        of these sessions, whoever they were held under (a session of the thread while it was
        anonymous is listed under the thread's owner of then, not the user's)."""
        dropped = 0
        for erased in session_ids:
            dropped += await self.drop_session(erased)
        for name in owners_or_threads:
            index = _sessions_of(name)
            members: set[bytes | str] = await self._redis.smembers(index)
            for session_id in members:
                dropped += await self.drop_session(_text(session_id))
            await self._redis.delete(index)
        return dropped
