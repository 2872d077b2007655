"""Live voice-session state in Redis: sessions, the thread's current session, turn claims.

A turn is claimed before it is published and completed after JetStream acknowledged it, so a
retry with the same ``client_turn_id`` is answered from the claim and never counted twice.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from redis.asyncio import Redis

from opencouch.contracts.common import MemoryMode

_SESSION: Final = "ocv:vs:{session_id}"
_THREAD_CURRENT: Final = "ocv:thread:{thread_id}:session"
_TURN: Final = "ocv:turn:{thread_id}:{client_turn_id}"

# Completing a claim and counting the turn happen together, exactly once per claim.
_COMPLETE_TURN: Final = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local claim = cjson.decode(raw)
  if claim.message_count then return claim.message_count end
end
local count = redis.call('HINCRBY', KEYS[2], 'message_count', 2)
redis.call('HINCRBY', KEYS[2], 'turn_count', 1)
redis.call('SET', KEYS[1], cjson.encode({fp = ARGV[1], message_count = count}), 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return count
"""


@dataclass(frozen=True)
class VoiceSession:
    """One browser voice session of a thread, as ``/session`` created it."""

    session_id: str
    thread_id: str
    user_id: str | None
    memory_mode: MemoryMode
    created_at: datetime

    def effective_mode(self, requested: MemoryMode) -> MemoryMode:
        """A request may lower the session to incognito, never raise it."""
        return self.memory_mode.floor(requested)


@dataclass(frozen=True)
class TurnClaim:
    """What the store knew of a ``client_turn_id`` when a request claimed it."""

    fresh: bool
    """This request made the claim; it must complete or release it."""
    conflict: bool
    """The id was claimed with a different body."""
    message_count: int | None
    """Set when the turn was already acknowledged: answer with it."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def new_session_id() -> str:
    """An unguessable, subject-safe voice session id."""
    return f"vs_{secrets.token_hex(16)}"


class VoiceSessionStore:
    """Voice sessions and turn claims, expiring after ``ttl_seconds`` of inactivity."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._complete_turn = redis.register_script(_COMPLETE_TURN)

    async def create(
        self, *, thread_id: str, user_id: str | None, memory_mode: MemoryMode, message_count: int
    ) -> VoiceSession:
        """Start a session and make it the thread's current one."""
        session = VoiceSession(
            session_id=new_session_id(),
            thread_id=thread_id,
            user_id=user_id,
            memory_mode=memory_mode,
            created_at=datetime.now(UTC),
        )
        key = _SESSION.format(session_id=session.session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "thread_id": thread_id,
                    "user_id": user_id or "",
                    "memory_mode": memory_mode.value,
                    "created_at": session.created_at.isoformat(),
                    "message_count": message_count,
                    "turn_count": 0,
                },
            )
            pipe.expire(key, self._ttl)
            pipe.set(_THREAD_CURRENT.format(thread_id=thread_id), session.session_id, ex=self._ttl)
            await pipe.execute()
        return session

    async def get(self, session_id: str) -> VoiceSession | None:
        """The session, or None if it never existed or expired."""
        fields = await self._redis.hgetall(_SESSION.format(session_id=session_id))
        if not fields:
            return None
        text = {_text(key): _text(value) for key, value in fields.items()}
        return VoiceSession(
            session_id=session_id,
            thread_id=text["thread_id"],
            user_id=text["user_id"] or None,
            memory_mode=MemoryMode(text["memory_mode"]),
            created_at=datetime.fromisoformat(text["created_at"]),
        )

    async def find(self, thread_id: str, session_id: str | None) -> VoiceSession | None:
        """The named session if it belongs to the thread, else the thread's current one."""
        if session_id is None:
            current = await self._redis.get(_THREAD_CURRENT.format(thread_id=thread_id))
            if current is None:
                return None
            session_id = _text(current)
        session = await self.get(session_id)
        if session is None or session.thread_id != thread_id:
            return None
        return session

    async def turn_count(self, session_id: str) -> int:
        """Turns acknowledged in this session."""
        raw = await self._redis.hget(_SESSION.format(session_id=session_id), "turn_count")
        return int(raw or 0)

    async def claim_turn(self, thread_id: str, client_turn_id: str, fingerprint: str) -> TurnClaim:
        """Claim ``client_turn_id`` for a body with ``fingerprint``."""
        key = _TURN.format(thread_id=thread_id, client_turn_id=client_turn_id)
        claimed = await self._redis.set(key, json.dumps({"fp": fingerprint}), nx=True, ex=self._ttl)
        if claimed:
            return TurnClaim(fresh=True, conflict=False, message_count=None)
        raw = await self._redis.get(key)
        if raw is None:  # released between our SET and GET: claim again
            return await self.claim_turn(thread_id, client_turn_id, fingerprint)
        claim = json.loads(raw)
        if claim["fp"] != fingerprint:
            return TurnClaim(fresh=False, conflict=True, message_count=None)
        return TurnClaim(fresh=False, conflict=False, message_count=claim.get("message_count"))

    async def complete_turn(
        self, session: VoiceSession, client_turn_id: str, fingerprint: str
    ) -> int:
        """Mark the turn acknowledged and count it once; returns the thread's message count."""
        count = await self._complete_turn(
            keys=[
                _TURN.format(thread_id=session.thread_id, client_turn_id=client_turn_id),
                _SESSION.format(session_id=session.session_id),
            ],
            args=[fingerprint, self._ttl],
        )
        return int(count)

    async def release_turn(self, thread_id: str, client_turn_id: str) -> None:
        """Drop a claim whose publish failed, so the browser's retry can try again."""
        await self._redis.delete(_TURN.format(thread_id=thread_id, client_turn_id=client_turn_id))
