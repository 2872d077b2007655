"""Live voice-session state in Redis: sessions, turn and tool-call claims, thread owners.

Every key is built by ``redis_key``, which escapes each id, so no two id tuples share a key.
Each decision that reads and writes (claiming a turn, closing a session, binding a thread)
is one Lua script: atomic, and one round trip. The commands of the hot path (claims, turn
completion, tool outputs) go through a ``CommandBatcher``: concurrent requests share a pipeline.

A turn is claimed before it is published and completed after JetStream acknowledged it; the
session counts claims in flight, so ``/end`` can close the session, wait for them to settle,
and only then count the turns the finalizer must wait for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote, unquote

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.voice_api import PROPOSED_THREAD_SECRET_MIN_LENGTH, Feedback
from opencouch.voice_gateway.redis_batching import CommandBatcher
from opencouch.voice_gateway.tokens import VoiceSessionClaims


def redis_key(kind: str, *ids: str) -> str:
    """``ocv:<kind>:<id>:<id>...`` with each id percent-escaped, so ``:`` in an id is harmless."""
    return ":".join(["ocv", kind, *(quote(part, safe="") for part in ids)])


@functools.lru_cache(maxsize=4096)
def _caller_keys(caller: Caller) -> tuple[str, ...]:
    """The session key and rate counter keys of ``caller``: a session's calls all name the same
    ones, so they are escaped once per session rather than on every call."""
    keys = [
        redis_key("vs", caller.session_id),
        redis_key("rate", "session", caller.session_id),
        redis_key("rate", "thread", caller.thread_id),
        redis_key("rate", "address", caller.address),
    ]
    if caller.user_id is not None:
        keys.append(redis_key("rate", "user", caller.user_id))
    return tuple(keys)


def new_session_id() -> str:
    """An unguessable, subject-safe voice session id."""
    return f"vs_{secrets.token_hex(16)}"


def fingerprint(body: str) -> str:
    """Identifies a request body, to tell an honest retry from a conflicting reuse of an id."""
    return hashlib.sha256(body.encode()).hexdigest()


LIVE_SESSIONS_KEY: Final = "ocv:live-sessions"
"""Every live session, scored by its expiry: what the active-sessions gauge counts."""

UNENDED_KEY: Final = "ocv:unended"
"""What waits for an ``/end`` that may never come, scored by when no token can send it any
more: each session not yet ended (member: its session key), and each conversation with sessions
ended as ``continued`` (member: its deferred key). The gateway ends what is due (see
``abandoned``)."""

ABANDON_MARGIN_SECONDS: Final = 60
"""How long after the last token of a session has expired its end is left to the gateway."""

_CREATE_SESSION: Final = """
-- KEYS: session, owner's live set, every live session, unended, the owner's deferred sessions
-- of this thread.  ARGV: now, session expiry, ttl, cap, session id, abandoned at, fields...
-- The owner's set keeps every session not yet closed (an erasure closes them all), until its
-- record has expired; only those not past their expiry count against the cap.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[3]))
if redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf') >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[6], KEYS[1])
-- Sessions deferred earlier in this conversation wait at least as long as this one may.
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('ZADD', KEYS[4], 'GT', ARGV[6], KEYS[5])
  redis.call('EXPIRE', KEYS[5], ARGV[3])
end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Every call of a live session is counted in the same round trip that decides it, against a
# fixed-window counter per scope (the voice session, its user, its thread, the client address):
# KEYS[3..] are the counters, ARGV[7..] a (limit, window seconds) pair for each. Over any one:
# ``limited`` and the seconds left, and no counter moves; else every counter counts the call.
# Each counter is counted first and given back if the call is over a limit: a call that is let
# through, nearly every one, costs Redis one command per counter.
# The counters live in Redis's memory only: they are not written to its append-only file or
# sent to replicas (``redis.set_repl``), so a call does not cost a write to disk for counts that
# matter for a minute. A restart or a failover starts the current windows again from zero.
_COUNT_CALL: Final = """
local now = tonumber(ARGV[4])
local counted = {}
redis.set_repl(redis.REPL_NONE)
for i = 3, #KEYS do
  local j = 7 + (i - 3) * 2
  local seconds = tonumber(ARGV[j + 1])
  local window = KEYS[i] .. ':' .. math.floor(now / seconds)
  local count = redis.call('INCR', window)
  counted[#counted + 1] = window
  if count == 1 then redis.call('EXPIRE', window, seconds) end
  if count > tonumber(ARGV[j]) then
    local left = math.max(redis.call('TTL', window), 1)
    for _, given_back in ipairs(counted) do redis.call('DECR', given_back) end
    return {'limited', tostring(left)}
  end
end
redis.set_repl(redis.REPL_ALL)
"""

_CLAIM: Final = (
    """
-- KEYS: session, claim, rate counters.  ARGV: the claim's record (JSON: its fingerprint, and
-- who claims it), claim ttl, count in flight, now, count claimed turns (1 for turns), durable
-- (0: the claim is kept in memory only), then each counter's limit and window seconds.
-- A session's record always has ``ended`` (0 or 1): one read tells a missing session and an
-- ended one.
local ended = redis.call('HGET', KEYS[1], 'ended')
if not ended and redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
"""
    + _COUNT_CALL
    + """
local raw = redis.call('GET', KEYS[2])
if raw then
  -- A stored turn (counted in flight) not acknowledged before its session's turns were
  -- counted for the finalizer is not acknowledged after: the count would leave it out. (An
  -- incognito turn is counted nowhere: its retry is screened again, as before the end.)
  if ARGV[3] == '1' and ended == '1' and redis.call('HGET', KEYS[1], 'counted') == '1'
     and not cjson.decode(raw).message_count then return {'ended'} end
  return {'seen', raw}
end
if ended == '1' then return {'ended'} end
if ARGV[6] == '0' then redis.set_repl(redis.REPL_NONE) end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'inflight', 1) end
local nth = 0
if ARGV[5] == '1' then nth = redis.call('HINCRBY', KEYS[1], 'claimed_turns', 1) end
return {'claimed', tostring(nth)}
"""
)

_CALL: Final = (
    """
-- KEYS: session, (unused), rate counters.  ARGV: -, -, -, now, -, -, each counter's limit and
-- window.
"""
    + _COUNT_CALL
    + """
return {'counted'}
"""
)

_COMPLETE_TURN: Final = """
-- KEYS: session, claim.  ARGV: fingerprint, ttl.  Counts the turn once per claim; {-1, 0}
-- when the session's turns were counted for the finalizer before it came (not acknowledged).
-- Gives back the claim's place in flight only if the claim is still there: one released
-- meanwhile (its first try's publish failed while a duplicate's went through) gave it back.
local raw = redis.call('GET', KEYS[2])
if raw then
  local claim = cjson.decode(raw)
  if claim.message_count then return {claim.message_count, 0} end
end
if redis.call('HGET', KEYS[1], 'counted') == '1' then return {-1, 0} end
local count = redis.call('HINCRBY', KEYS[1], 'message_count', 2)
local turns = redis.call('HINCRBY', KEYS[1], 'turn_count', 1)
if raw then redis.call('HINCRBY', KEYS[1], 'inflight', -1) end
redis.call('SET', KEYS[2], cjson.encode({fp = ARGV[1], message_count = count}), 'EX', ARGV[2])
return {count, turns}
"""

_RELEASE_TURN: Final = """
-- KEYS: session, claim.  ARGV: '1' when the claim counted as in flight.  Drops a claim that
-- was not acknowledged (its publish failed, or it came too late), so a retry can try again.
local raw = redis.call('GET', KEYS[2])
if raw and not cjson.decode(raw).message_count then
  redis.call('DEL', KEYS[2])
  if ARGV[1] == '1' then redis.call('HINCRBY', KEYS[1], 'inflight', -1) end
end
return 1
"""

_CLOSE: Final = """
-- KEYS: session, owner's live set, every live session, unended.  ARGV: session id, how
-- ('forget': nothing will end the session; 'final': an end that decides, with the choice in
-- ARGV[3] and when it is the gateway's to end in ARGV[4]; else a continued end).
-- Returns {was_open, inflight, turns}.
if ARGV[2] == 'forget' then redis.call('ZREM', KEYS[4], KEYS[1]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
if ARGV[2] == 'final' then
  -- Kept until the end is done, so that if it fails, whoever ends the session instead (a
  -- retry, the gateway's sweep) ends it as the person chose.
  redis.call('HSET', KEYS[1], 'end_choice', ARGV[3])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[4], KEYS[1])
end
local was_open = redis.call('HGET', KEYS[1], 'ended') ~= '1' and 1 or 0
redis.call('HSET', KEYS[1], 'ended', '1')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {was_open,
        tonumber(redis.call('HGET', KEYS[1], 'inflight') or '0'),
        tonumber(redis.call('HGET', KEYS[1], 'turn_count') or '0')}
"""

_COUNT_TURNS: Final = """
-- KEYS: session.  The session's turns, counted for good: no turn is acknowledged after.
redis.call('HSET', KEYS[1], 'counted', '1')
return tonumber(redis.call('HGET', KEYS[1], 'turn_count') or '0')
"""

_BIND_THREAD: Final = """
-- KEYS: thread owner.  ARGV: owner json, ttl, the sha256 of the secret a verified user
-- presented to adopt an anonymous thread ('' for none).  Binds once; an anonymous binding
-- whose secret was presented passes to the user.  Returns the binding that holds and 1 when
-- this call made it.
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return {ARGV[1], 1}
end
if ARGV[3] ~= '' then
  local held = cjson.decode(raw)
  if held['user_id'] == cjson.null and held['secret_sha256'] == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return {ARGV[1], 0}
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {raw, 0}
"""


_KEEP_UNKEPT_OUTPUT: Final = """
-- KEYS: the call, the session's kept outputs, the session.  ARGV: record, ttl.  An incognito
-- call's output: in memory only, listed for its session's end, and not once the session ended.
if redis.call('HGET', KEYS[3], 'ended') == '1' then return 0 end
redis.set_repl(redis.REPL_NONE)
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.set_repl(redis.REPL_ALL)
return 1
"""


class ClaimState(StrEnum):
    """What a claim script found."""

    CLAIMED = "claimed"
    SEEN = "seen"
    ENDED = "ended"
    MISSING = "missing"
    LIMITED = "limited"
    COUNTED = "counted"


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a turn or a tool call for one request."""

    state: ClaimState
    record: dict[str, Any] | None = None
    """What the first claimant stored (``fp``, a tool call's ``by``, and ``message_count`` or
    ``output`` once done)."""
    retry_after: int = 0
    """Seconds until the session may call again, when ``LIMITED``."""
    nth_turn: int = 0
    """For a fresh turn claim: how many turn claims the session has made, this one included."""

    @property
    def by(self) -> str | None:
        """Who made the claim found (``running_calls``), if its record says."""
        by = self.record.get("by") if self.record is not None else None
        return by if isinstance(by, str) else None

    def conflicts_with(self, body_print: str) -> bool:
        """The id was claimed for a different body."""
        return self.record is not None and self.record.get("fp") != body_print


@dataclass(frozen=True)
class CallLimit:
    """How many calls may be made per window."""

    calls: int
    window_seconds: int


@dataclass(frozen=True)
class CallLimits:
    """The calls of live sessions allowed per window, by scope. An anonymous thread is its own
    user, so it counts against the thread limit only."""

    session: CallLimit
    user: CallLimit
    thread: CallLimit
    address: CallLimit

    @classmethod
    def uniform(cls, limit: CallLimit) -> CallLimits:
        """The same limit for every scope."""
        return cls(session=limit, user=limit, thread=limit, address=limit)


@dataclass(frozen=True)
class Caller:
    """Who makes a call of a live session: the counters it counts against."""

    session_id: str
    thread_id: str
    user_id: str | None
    address: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ClosedSession:
    """What closing a session found."""

    existed: bool
    was_open: bool
    turn_count: int


@dataclass(frozen=True)
class EndChoice:
    """What the person chose when they ended the conversation: keep it or not, and feedback."""

    save: bool = True
    feedback: Feedback | None = None

    def encoded(self) -> str:
        """As kept in Redis."""
        return json.dumps({"save": self.save, "feedback": self.feedback})

    @classmethod
    def decoded(cls, raw: str) -> EndChoice:
        """From what ``encoded`` kept."""
        kept = json.loads(raw)
        feedback = kept.get("feedback")
        return cls(save=bool(kept["save"]), feedback=Feedback(feedback) if feedback else None)


DEFAULT_CHOICE: Final = EndChoice()
"""An end nobody chose for (a tab closed): saved, without feedback."""


@dataclass(frozen=True)
class ThreadOwner:
    """Who a thread is bound to: a verified user, or whoever holds its secret."""

    user_id: str | None
    secret_sha256: str | None

    def admits(self, user_id: str | None, thread_secret: str | None) -> bool:
        """Whether a caller with ``user_id`` (verified) and ``thread_secret`` may open it."""
        if self.user_id is not None:
            return user_id == self.user_id
        if thread_secret is None or self.secret_sha256 is None:
            return False
        presented = hashlib.sha256(thread_secret.encode()).hexdigest()
        return hmac.compare_digest(presented, self.secret_sha256)


class VoiceSessionStore:
    """Voice sessions, claims and thread owners; session state expires with the session."""

    def __init__(
        self,
        redis: Redis,
        *,
        session_seconds: int,
        grace_seconds: int,
        thread_binding_seconds: int,
        call_output_seconds: int,
        call_limits: CallLimits,
    ) -> None:
        self._redis = redis
        self._batch = CommandBatcher(redis)
        self._ttl = session_seconds + grace_seconds + 3600
        self._session_seconds = session_seconds
        self._grace = grace_seconds
        self._thread_ttl = thread_binding_seconds
        self._call_ttl = call_output_seconds
        self._create = redis.register_script(_CREATE_SESSION)
        self._claim = redis.register_script(_CLAIM)
        self._call = redis.register_script(_CALL)
        self._call_limits = call_limits
        self._limits = self._limit_args(with_user=False)
        self._limits_with_user = self._limit_args(with_user=True)
        self._complete = redis.register_script(_COMPLETE_TURN)
        self._release = redis.register_script(_RELEASE_TURN)
        self._close = redis.register_script(_CLOSE)
        self._count = redis.register_script(_COUNT_TURNS)
        self._bind = redis.register_script(_BIND_THREAD)
        self._keep_unkept = redis.register_script(_KEEP_UNKEPT_OUTPUT)
        self._defer = redis.register_script(_DEFER)
        self._take_deferred = redis.register_script(_TAKE_DEFERRED)
        self._due = redis.register_script(_DUE)

    # -- threads --------------------------------------------------------------------------

    async def thread_owner(self, thread_id: str) -> ThreadOwner | None:
        """Who the thread is bound to, if anyone."""
        raw = await self._redis.get(redis_key("thread", thread_id))
        return ThreadOwner(**json.loads(raw)) if raw else None

    async def bind_thread(
        self,
        thread_id: str,
        user_id: str | None,
        proposed_secret: str | None = None,
        *,
        adopt: bool = False,
    ) -> tuple[ThreadOwner, str | None]:
        """The thread's owner, binding it to this caller if it has none.

        Returns the owner and, when this call bound an anonymous thread, its secret (only its
        hash is kept). A long enough secret the caller proposed is the one bound: the caller
        then holds it before asking, so a reply lost on the way (a timeout, a dropped
        connection) cannot lock it out of its own new thread; a retry presents it again and is
        admitted. Otherwise the gateway makes one, shown to the caller once.

        With ``adopt``, a verified user presenting an anonymous thread's secret takes the
        thread: from then on it is theirs alone, as memory already counts it once they speak
        in it, and the secret opens it no more (else anyone holding the secret could read, or
        erase, what the user said in it).
        """
        presented = ""
        if user_id and adopt and proposed_secret:
            presented = hashlib.sha256(proposed_secret.encode()).hexdigest()
        if user_id:
            secret = None
        elif proposed_secret and len(proposed_secret) >= PROPOSED_THREAD_SECRET_MIN_LENGTH:
            secret = proposed_secret
        else:
            secret = secrets.token_urlsafe(32)
        proposed = {
            "user_id": user_id,
            "secret_sha256": hashlib.sha256(secret.encode()).hexdigest() if secret else None,
        }
        encoded = json.dumps(proposed, sort_keys=True)
        held, bound = await self._bind(
            keys=[redis_key("thread", thread_id)], args=[encoded, self._thread_ttl, presented]
        )
        owner = ThreadOwner(**json.loads(_text(held)))
        return owner, (secret if bound else None)

    # -- sessions -------------------------------------------------------------------------

    async def create(
        self, claims: VoiceSessionClaims, *, message_count: int, max_live: int
    ) -> bool:
        """Record the session; False when its owner already holds ``max_live`` live sessions."""
        now = int(time.time())
        fields = {
            "thread_id": claims.thread_id,
            "user_id": claims.user_id or "",
            "memory_mode": claims.memory_mode.value,
            "created_at": now,
            "session_expires_at": claims.session_expires_at,
            "ended": 0,
            "inflight": 0,
            "turn_count": 0,
            "message_count": message_count,
        }
        abandoned_at = self._abandoned_at(claims.session_expires_at)
        args: list[Any] = [
            now,
            claims.session_expires_at,
            self._ttl,
            max_live,
            claims.session_id,
            abandoned_at,
        ]
        for name, value in fields.items():
            args += [name, value]
        created = await self._create(
            keys=[
                redis_key("vs", claims.session_id),
                redis_key("live", claims.owner_id),
                LIVE_SESSIONS_KEY,
                UNENDED_KEY,
                _deferred_key(claims.owner_id, claims.thread_id),
            ],
            args=args,
        )
        return bool(created)

    async def live_sessions(self) -> int:
        """How many voice sessions are live now, across every gateway."""
        now = int(time.time())
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(LIVE_SESSIONS_KEY, "-inf", now)
            pipe.zcard(LIVE_SESSIONS_KEY)
            _, count = await pipe.execute()
        return int(count)

    async def close(
        self,
        claims: VoiceSessionClaims,
        settle_seconds: float,
        *,
        final: EndChoice | None = None,
    ) -> ClosedSession:
        """End the session to new turns and tools, wait for claims in flight, count its turns.

        ``final``: the choice of an end that decides (not ``continued``). It is kept with the
        session, and the session stays the gateway's to end until ``ended``: should this end
        fail, it is ended with that choice (even one ended as ``continued`` before)."""
        keys = [
            redis_key("vs", claims.session_id),
            redis_key("live", claims.owner_id),
            LIVE_SESSIONS_KEY,
            UNENDED_KEY,
        ]
        args: list[str | int] = [claims.session_id, "continued"]
        if final is not None:
            abandoned_at = self._abandoned_at(claims.session_expires_at)
            args = [claims.session_id, "final", final.encoded(), abandoned_at]
        was_open, inflight, turns = await self._close(keys=keys, args=args)
        if was_open == -1:
            return ClosedSession(existed=False, was_open=False, turn_count=0)
        deadline = time.monotonic() + settle_seconds
        while int(inflight) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            inflight = int(await self._redis.hget(keys[0], "inflight") or 0)
        # The count the finalizer waits for: from now on no turn of the session is acknowledged
        # (one whose first try died after its claim is refused rather than left out).
        turns = await self._count(keys=[keys[0]])
        return ClosedSession(existed=True, was_open=bool(was_open), turn_count=int(turns))

    def _abandoned_at(self, session_expires_at: int) -> int:
        """When no token of a session expiring at ``session_expires_at`` can end it any more:
        from then on, ending it is the gateway's to do."""
        return session_expires_at + self._grace + ABANDON_MARGIN_SECONDS

    async def ended(self, session_id: str) -> None:
        """The session's end is done (finalization published, deferred, or nothing to keep):
        the gateway has nothing left to end for it."""
        await self._redis.zrem(UNENDED_KEY, redis_key("vs", session_id))

    async def due(self, now: float, lease_seconds: float, most: int) -> list[Unended]:
        """Up to ``most`` of what no ``/end`` came for and no token can send any more, each
        leased to the caller for ``lease_seconds``: the caller ends it, or another gateway does
        once the lease has run out."""
        raw = await self._due(keys=[UNENDED_KEY], args=[now, now + lease_seconds, most])
        return [Unended.parse(_text(member)) for member in raw]

    async def unended_session(self, session_id: str) -> VoiceSessionClaims | None:
        """What a token of the session said, from its record; None once it expired."""
        record = {
            _text(name): _text(value)
            for name, value in (await self._redis.hgetall(redis_key("vs", session_id))).items()
        }
        if not record:
            return None
        expires = int(record["session_expires_at"])
        return VoiceSessionClaims(
            session_id=session_id,
            thread_id=record["thread_id"],
            user_id=record["user_id"] or None,
            memory_mode=MemoryMode(record["memory_mode"]),
            session_expires_at=expires,
            expires_at=expires + self._grace,
        )

    async def end_choice(self, session_id: str) -> EndChoice | None:
        """The choice of the session's last end that decided, if one came (and failed)."""
        raw = await self._redis.hget(redis_key("vs", session_id), "end_choice")
        return None if raw is None else EndChoice.decoded(_text(raw))

    async def settle(self, unended: Unended) -> None:
        """Nothing is left to end for ``unended``."""
        await self._redis.zrem(UNENDED_KEY, unended.key)

    async def discard(self, claims: VoiceSessionClaims) -> None:
        """Close a session that was never handed out (its ``/session`` failed after ``create``):
        no ``/end`` will come and nothing is left to end, so nothing ends it later either."""
        await self._close_for_good(claims.session_id, claims.owner_id)

    async def _close_for_good(self, session_id: str, owner_id: str) -> None:
        """Close the session and take it out of the unended set: nothing will end it."""
        await self._close(
            keys=[
                redis_key("vs", session_id),
                redis_key("live", owner_id),
                LIVE_SESSIONS_KEY,
                UNENDED_KEY,
            ],
            args=[session_id, "forget"],
        )

    async def close_all_live(self, claims: VoiceSessionClaims) -> list[str]:
        """End every live session of the token's owner (the current one too); their ids.

        They are being forgotten: nothing will finalize them."""
        live = redis_key("live", claims.owner_id)
        members = {
            m.decode() if isinstance(m, bytes) else str(m)
            for m in await self._redis.zrange(live, 0, -1)
        }
        members.add(claims.session_id)
        for session_id in members:
            await self._close_for_good(session_id, claims.owner_id)
        return sorted(members)

    async def forget(self, session_ids: list[str]) -> None:
        """Drop what is kept of these sessions' content: turn claims and tool outputs.

        The (ended) session records stay until they expire: they hold counters and an id, and
        keep a late call answered ``session_ended`` rather than ``not found``.
        """
        for session_id in session_ids:
            keys: list[str] = []
            for kind in ("turn", "call"):
                pattern = redis_key(kind, session_id) + ":*"
                keys += [key async for key in self._redis.scan_iter(match=pattern, count=500)]
            if keys:
                await self._redis.delete(*keys)

    async def turn_count(self, session_id: str) -> int:
        """Turns acknowledged in this session."""
        return int(await self._redis.hget(redis_key("vs", session_id), "turn_count") or 0)

    # -- turns ----------------------------------------------------------------------------

    async def claim_turn(
        self, caller: Caller, client_turn_id: str, body_print: str, *, in_flight: bool = True
    ) -> Claim:
        """Claim ``client_turn_id`` in the caller's session for a body with ``body_print``,
        counting the call against the caller's limits.

        ``in_flight`` claims count until completed or released, so ``close`` waits for them.
        """
        return await self._run_claim(
            redis_key("turn", caller.session_id, client_turn_id),
            caller,
            body_print,
            inflight=in_flight,
            turn=True,
        )

    async def complete_turn(
        self, session_id: str, client_turn_id: str, body_print: str
    ) -> tuple[int, int]:
        """Mark the turn acknowledged and count it once.

        Returns the thread's message count, and which turn of the session this one became
        (0 when another request had already completed it); a count of -1 when the session's
        turns were counted for its end before: the turn is not acknowledged.
        """
        count, nth = await self._batch.run_script(
            self._complete,
            [redis_key("vs", session_id), redis_key("turn", session_id, client_turn_id)],
            [body_print, self._ttl],
        )
        return int(count), int(nth)

    async def release_turn(
        self, session_id: str, client_turn_id: str, *, in_flight: bool = True
    ) -> None:
        """Drop a claim that was not acknowledged, so the browser's retry can try again."""
        await self._release(
            keys=[redis_key("vs", session_id), redis_key("turn", session_id, client_turn_id)],
            args=["1" if in_flight else "0"],
        )

    async def forget_call(self, session_id: str, call_id: str) -> None:
        """Drop a tool call's claim that was refused before it ran."""
        await self._redis.delete(redis_key("call", session_id, call_id))

    # -- tool calls -----------------------------------------------------------------------

    async def claim_call(
        self,
        caller: Caller,
        call_id: str,
        body_print: str,
        hold: float,
        *,
        kept: bool = False,
        by: str | None = None,
    ) -> Claim:
        """Claim a tool call, counting it against the caller's limits; a replay finds the first
        call's record (and output once stored).

        ``hold``: how long the call may run, after which an unanswered claim lapses. ``kept``:
        the claim itself is kept as long as an output would be (a call whose output is not
        stored, because a replay is answered again), so a reuse of the id is still caught. Such
        a claim is kept in Redis's memory only (not written to its append-only file): after a
        restart of Redis a replay is answered again, as any replay of it is. ``by``: who
        claims it (``running_calls``), kept in the record for a replay to ask; a claim found
        made by ``by`` itself (its reply was lost and it was sent again) is claimed."""
        claim = await self._run_claim(
            redis_key("call", caller.session_id, call_id),
            caller,
            body_print,
            inflight=False,
            # A whole second past the call's longest run, so a call that timed out still finds
            # its claim when it stores its output (a fractional hold rounds up, never down).
            claim_seconds=self._call_ttl if kept else math.ceil(hold) + 1,
            durable=not kept,
            by=by,
        )
        if claim.state is ClaimState.SEEN and by is not None and claim.by == by:
            return Claim(ClaimState.CLAIMED, claim.record)
        return claim

    async def call_record(self, session_id: str, call_id: str) -> dict[str, Any] | None:
        """The stored record of a tool call, if any."""
        raw = await self._redis.get(redis_key("call", session_id, call_id))
        return json.loads(raw) if raw else None

    async def store_call_output(
        self, session_id: str, call_id: str, body_print: str, output: dict[str, Any], ok: bool
    ) -> None:
        """Keep a call's output, so a replay of its ``call_id`` gets the same answer."""
        record = json.dumps({"fp": body_print, "output": output, "ok": ok})
        await self._batch.execute(
            "SET", redis_key("call", session_id, call_id), record, "EX", self._call_ttl
        )

    async def store_sealed_output(
        self, session_id: str, call_id: str, body_print: str, sealed: str, *, until: int
    ) -> None:
        """Keep an incognito call's output, sealed (``sealing``), for its replays: no longer
        than its token lives (``until``), not written to the append-only file, not at all once
        its session ended, and listed for ``drop_outputs`` to drop at the end."""
        ttl = max(1, min(self._call_ttl, until - int(time.time())))
        await self._keep_unkept(
            keys=[
                redis_key("call", session_id, call_id),
                redis_key("outputs", session_id),
                redis_key("vs", session_id),
            ],
            args=[json.dumps({"fp": body_print, "sealed": sealed}), ttl],
        )

    async def drop_outputs(self, session_id: str) -> None:
        """Drop the outputs an incognito session kept for replays (its end): none is kept once
        it ended, so none comes after."""
        listed = redis_key("outputs", session_id)
        kept = await self._redis.smembers(listed)
        await self._redis.delete(listed, *kept)

    async def count_call(self, caller: Caller) -> Claim:
        """Count a call of the session that claims nothing (end, status, history)."""
        return await self._decide(self._call, caller, "-", ["-", "-", "-"], turn=False)

    async def _run_claim(
        self,
        key: str,
        caller: Caller,
        body_print: str,
        *,
        inflight: bool,
        turn: bool = False,
        claim_seconds: int | None = None,
        durable: bool = True,
        by: str | None = None,
    ) -> Claim:
        record = {"fp": body_print} if by is None else {"fp": body_print, "by": by}
        head = [json.dumps(record), claim_seconds or self._ttl, "1" if inflight else "0"]
        return await self._decide(self._claim, caller, key, head, turn=turn, durable=durable)

    def _limit_args(self, with_user: bool) -> list[int]:
        """Each rate counter's limit and window seconds, in ``_caller_keys``'s order."""
        limits = self._call_limits
        scoped = [limits.session, limits.thread, limits.address]
        if with_user:
            scoped.append(limits.user)
        return [value for limit in scoped for value in (limit.calls, limit.window_seconds)]

    async def _decide(
        self,
        script: AsyncScript,
        caller: Caller,
        key: str,
        head: list[Any],
        *,
        turn: bool,
        durable: bool = True,
    ) -> Claim:
        session_key, *counters = _caller_keys(caller)
        limits = self._limits_with_user if caller.user_id is not None else self._limits
        result = await self._batch.run_script(
            script,
            [session_key, key, *counters],
            [*head, int(time.time()), "1" if turn else "0", "1" if durable else "0", *limits],
        )
        state = ClaimState(_text(result[0]))
        if state is ClaimState.LIMITED:
            return Claim(state, retry_after=max(1, int(_text(result[1]))))
        if state is ClaimState.CLAIMED:
            return Claim(state, nth_turn=int(_text(result[1])) if len(result) > 1 else 0)
        record = json.loads(result[1]) if state is ClaimState.SEEN else None
        return Claim(state, record)

    # -- deferred ends --------------------------------------------------------------------
    # A session ended with ``continued`` (the call dropped; the conversation goes on in a new
    # session of the same thread) is closed but not finalized: it waits here, under its owner
    # and thread, for the conversation's last ``/end``, which finalizes it with its own save
    # and feedback. Only ids and counts are kept, never content.

    async def defer_end(self, claims: VoiceSessionClaims, turn_count: int) -> bool:
        """Keep the (closed) session for the conversation's last ``/end`` to finalize; False,
        keeping nothing, if an end that decides came for it first (its own end is under way:
        a continued end retried past it must not have it finalized a second time).

        Kept as long as a session's own state (its maximum duration, the token's grace and an
        hour), renewed by every later deferral and every later session of the conversation:
        longer than the token of any session the conversation goes on in can still call
        ``/end``. If no end comes before no token could send one, the gateway finalizes it as an
        ``/end`` with no body would (see ``abandoned``).
        """
        entry = DeferredEnd(
            session_id=claims.session_id,
            thread_id=claims.thread_id,
            user_id=claims.user_id,
            owner=claims.owner_id,
            turn_count=turn_count,
            deferred_at=time.time(),
        )
        key = _deferred_key(claims.owner_id, claims.thread_id)
        # Unless a later session of the conversation makes it wait longer (see create), it is
        # the gateway's to finalize once a session started now could no longer be ended.
        abandoned_at = self._abandoned_at(int(entry.deferred_at) + self._session_seconds)
        deferred = await self._defer(
            keys=[redis_key("vs", claims.session_id), key, UNENDED_KEY],
            args=[entry.session_id, entry.encoded(), self._ttl, abandoned_at],
        )
        return bool(deferred)

    async def take_deferred(self, owner_id: str, thread_id: str) -> list[DeferredEnd]:
        """Remove and return every deferred session of the thread and owner, at once: of two
        ends racing, only one gets each."""
        raw = await self._take_deferred(
            keys=[_deferred_key(owner_id, thread_id), UNENDED_KEY], args=[owner_id]
        )
        return [DeferredEnd.decoded(_text(item)) for item in raw]

    async def restore_deferred(
        self,
        owner_id: str,
        thread_id: str,
        entries: list[DeferredEnd],
        *,
        choice: EndChoice | None = None,
        retry_at: float | None = None,
    ) -> None:
        """Put back taken sessions whose end could not be published, for a retry to take;
        the gateway's to end at ``retry_at`` (or later, should a session of the conversation
        still be able to end them) if no retry comes first. ``choice``, the failed end's, goes
        with them: the gateway ends them as the person chose.

        By default not before the session whose end failed could be ended by its retry."""
        if not entries:
            return
        key = _deferred_key(owner_id, thread_id)
        if retry_at is None:
            retry_at = self._abandoned_at(int(time.time()) + self._session_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                if choice is not None:
                    entry = dataclasses.replace(entry, choice=choice.encoded())
                pipe.hsetnx(key, entry.session_id, entry.encoded())
            pipe.expire(key, self._ttl)
            pipe.zadd(UNENDED_KEY, {key: retry_at}, gt=True)
            await pipe.execute()

    async def forget_deferred_ends(self, owner_id: str) -> None:
        """Drop every deferred session of an owner, in all its threads (an erasure)."""
        pattern = redis_key("deferred", owner_id) + ":*"
        keys = [key async for key in self._redis.scan_iter(match=pattern, count=500)]
        if keys:
            await self._redis.delete(*keys)
            await self._redis.zrem(UNENDED_KEY, *keys)


_DEFER: Final = """
-- KEYS: the session, the thread's deferred sessions of one owner, unended.  ARGV: session id,
-- entry, ttl, when it is the gateway's to end.  Defers the session unless an end that decides
-- came for it first (its choice is kept with it); 1 when deferred.
if redis.call('HEXISTS', KEYS[1], 'end_choice') == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], 'GT', ARGV[4], KEYS[2])
return 1
"""

_TAKE_DEFERRED: Final = """
-- KEYS: the thread's deferred sessions of one owner, unended.  ARGV: owner.
-- Removes and returns those the owner deferred, in one step.
local raw = redis.call('HGETALL', KEYS[1])
local taken = {}
for i = 1, #raw, 2 do
  if cjson.decode(raw[i + 1]).owner == ARGV[1] then
    redis.call('HDEL', KEYS[1], raw[i])
    taken[#taken + 1] = raw[i + 1]
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], KEYS[1]) end
return taken
"""

_DUE: Final = """
-- KEYS: unended.  ARGV: now, lease until, most.
-- What is due, each leased to this caller until ARGV[2]: another gateway takes it only if this
-- one has not settled it by then.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""


def _deferred_key(owner_id: str, thread_id: str) -> str:
    return redis_key("deferred", owner_id, thread_id)


@dataclass(frozen=True)
class Unended:
    """A session, or a conversation's deferred sessions, that no ``/end`` came for."""

    key: str
    session_id: str | None = None
    """The session, for a session."""
    owner_id: str | None = None
    """The owner of the deferred sessions, for a conversation."""
    thread_id: str | None = None
    """Their thread, for a conversation."""

    @classmethod
    def parse(cls, key: str) -> Unended:
        """From its member of ``UNENDED_KEY`` (a session's key or a deferred key)."""
        _, kind, *ids = key.split(":")
        parts = [unquote(part) for part in ids]
        if kind == "vs" and len(parts) == 1:
            return cls(key, session_id=parts[0])
        if kind == "deferred" and len(parts) == 2:
            return cls(key, owner_id=parts[0], thread_id=parts[1])
        raise ValueError(f"not an unended key: {key!r}")


@dataclass(frozen=True)
class DeferredEnd:
    """A session closed with ``continued``, waiting for its conversation's last ``/end``."""

    session_id: str
    thread_id: str
    user_id: str | None
    owner: str
    turn_count: int
    """Its turns, counted when it was closed (in-flight turns settled)."""
    deferred_at: float
    choice: str | None = None
    """The choice (``EndChoice.encoded``) of a conversation's end that failed to finalize it."""

    def encoded(self) -> str:
        """As kept in Redis."""
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def decoded(cls, raw: str) -> DeferredEnd:
        """From what ``encoded`` kept."""
        return cls(**json.loads(raw))
