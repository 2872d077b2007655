"""A voice session's tool state in Redis: its latest crisis lookup, its exercise, and what the
crisis classifier needs to remember between turns. Every key is scoped to the session and
expires with it (when the gateway says when the session ends, else after ``ttl``); none holds
anything the user said.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, TypeVar

import redis.exceptions
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from opencouch.contracts.care import CrisisResourcesOutput
from opencouch.contracts.common import ErrorCode
from opencouch.runtime.errors import ServiceError
from opencouch.tools.classifier import SafetyQuestion
from opencouch.tools.exercises import ExerciseRun

ResultT = TypeVar("ResultT")

KEY_PREFIX: Final = "opencouch:tools"
_MAX_WATCH_RETRIES: Final = 20
TOOL_CALL_PARTS: Final = ("crisis_lookup", "exercise")
"""The parts of a session's state its tool calls keep."""
_CLOCK_SKEW_SECONDS: Final = 60
"""Kept this much past a session's end, for clocks of the gateway and Redis that disagree."""


class ScreeningMemory(BaseModel):
    """What the classifier carries from one turn of a session to the next (no text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    safety_check_pending: bool = False
    """The assistant's last line asked the user directly about their safety."""
    safety_question: SafetyQuestion = "risk"
    """What it asked: about a risk, whether they are safe, or both (the answer's polarity)."""
    ideation_earlier: bool = False
    """An earlier turn of this session was at level 2 or more."""
    as_of: datetime | None = None
    """When the turn whose assistant line set ``safety_check_pending`` began: a turn screened
    late (a redelivery) does not put back an older one's."""
    before: ScreeningMemory | None = None
    """What was remembered before that turn was screened: the context that turn itself, sent
    again, is read in (not the one it left for the turn after it)."""

    def for_turn(self, at: datetime) -> ScreeningMemory:
        """The context to screen the turn begun ``at`` in: this, unless this was left by that
        turn itself or a later one (``at`` sent again after its screen saved this, or late)
        and what came before is older than it."""
        earlier = self.before
        if (
            self.as_of is not None
            and at <= self.as_of
            and earlier is not None
            and (earlier.as_of is None or earlier.as_of < at)
        ):
            return earlier
        return self

    def after(
        self, at: datetime, *, asked: SafetyQuestion | None, at_risk: bool
    ) -> ScreeningMemory:
        """What to remember after screening the turn begun ``at``, whose assistant line
        ``asked`` a safety question (or None)."""
        if self.as_of is not None and at < self.as_of:
            return self.model_copy(update={"ideation_earlier": self.ideation_earlier or at_risk})
        # The same turn screened again starts from what came before it, as its first screen did.
        base = self.before if at == self.as_of and self.before is not None else self
        return ScreeningMemory(
            safety_check_pending=asked is not None,
            safety_question=asked or "risk",
            ideation_earlier=base.ideation_earlier or at_risk,
            as_of=at,
            before=base.model_copy(update={"before": None}),
        )


def session_key(session_id: str, part: str) -> str:
    """The Redis key of one part of a session's tool state."""
    return f"{KEY_PREFIX}:{session_id}:{part}"


def state_unavailable() -> ServiceError:
    """The error a tool reports when session state cannot be reached."""
    return ServiceError(
        ErrorCode.TOOL_UNAVAILABLE, "The conversation's tool state is unavailable right now."
    )


class SessionState:
    """Reads and writes of a session's tool state, each expiring when its session can no
    longer call tools (``until``, from the gateway), at most ``ttl`` seconds after its last
    write."""

    def __init__(self, redis: Redis, ttl: int) -> None:
        self._redis = redis
        self._ttl = ttl

    def _seconds(self, until: int | None) -> int:
        if until is None:
            return self._ttl
        return max(1, min(self._ttl, until - int(time.time()) + _CLOCK_SKEW_SECONDS))

    async def forget(self, session_ids: list[str]) -> None:
        """Drop every part of these sessions' tool state."""
        await self._delete(session_ids, (*TOOL_CALL_PARTS, "screening"))

    async def forget_tool_calls_state(self, session_id: str) -> None:
        """Drop what the session's tool calls kept (lookup, exercise): nothing calls them once
        it closed. Its screening memory stays until it expires: the classifier may still be
        catching up on the session's last turns, and needs it to read them in context."""
        await self._delete([session_id], TOOL_CALL_PARTS)

    async def _delete(self, session_ids: list[str], parts: tuple[str, ...]) -> None:
        keys = [session_key(session_id, part) for session_id in session_ids for part in parts]
        if keys:
            await self._redis.delete(*keys)

    async def save_crisis_lookup(
        self, session_id: str, lookup: CrisisResourcesOutput, until: int | None = None
    ) -> None:
        """Keep ``lookup`` as the session's latest verified lookup, until the session ends."""
        await self._redis.set(
            session_key(session_id, "crisis_lookup"),
            lookup.model_dump_json(),
            ex=self._seconds(until),
        )

    async def latest_crisis_lookup(self, session_id: str) -> CrisisResourcesOutput | None:
        """The session's latest lookup, if one was made (and is still kept)."""
        raw = await self._redis.get(session_key(session_id, "crisis_lookup"))
        return _parse(CrisisResourcesOutput, raw)

    async def screening_memory(self, session_id: str) -> ScreeningMemory:
        """What the classifier remembered about this session."""
        raw = await self._redis.get(session_key(session_id, "screening"))
        return _parse(ScreeningMemory, raw) or ScreeningMemory()

    async def save_screening_memory(self, session_id: str, memory: ScreeningMemory) -> None:
        """Remember ``memory`` for the session's next turn."""
        await self._redis.set(
            session_key(session_id, "screening"), memory.model_dump_json(), ex=self._ttl
        )

    async def remember_screened(
        self, session_id: str, at: datetime, *, asked: SafetyQuestion | None, at_risk: bool
    ) -> None:
        """Add the turn begun ``at`` to the session's screening memory, atomically: two
        replicas screening turns of one session at once both count, and the later turn's
        assistant line is the one remembered, whichever was screened last."""
        key = session_key(session_id, "screening")
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    current = _parse(ScreeningMemory, await pipe.get(key)) or ScreeningMemory()
                    new = current.after(at, asked=asked, at_risk=at_risk)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, new.model_dump_json(), ex=self._ttl)
                    await pipe.execute()
                    return
                except redis.exceptions.WatchError:
                    continue
        raise redis.exceptions.TimeoutError("the screening memory is being changed concurrently")

    async def change_exercise(
        self,
        session_id: str,
        change: Callable[[ExerciseRun | None], tuple[ExerciseRun | None, ResultT]],
        fallback: Callable[[], Awaitable[ExerciseRun | None]] | None = None,
        until: int | None = None,
    ) -> tuple[ExerciseRun | None, ResultT, bool]:
        """Apply ``change`` to the session's exercise run atomically.

        Two calls racing on one session cannot both advance it: the write happens only if the
        run is unchanged since it was read (else ``change`` runs again on the new run).
        ``fallback`` supplies the run when Redis has none (a persistent session's copy in
        Postgres). Returns the new run, ``change``'s result, and whether the run was written.
        It is kept until the session ends (``until``).
        """
        key = session_key(session_id, "exercise")
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    current = _parse(ExerciseRun, await pipe.get(key))
                    if current is None and fallback is not None:
                        current = await fallback()
                    new, result = change(current)
                    changed = new is not None and new != current
                    if changed and new is not None:
                        revision = current.revision + 1 if current else 1
                        new = new.model_copy(update={"revision": revision})
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if new is not None:
                        pipe.set(key, new.model_dump_json(), ex=self._seconds(until))
                    await pipe.execute()
                    return new, result, changed
                except redis.exceptions.WatchError:
                    continue
        raise ServiceError(ErrorCode.TOOL_FAILED, "The exercise is being changed concurrently.")


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], raw: bytes | str | None) -> ModelT | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None  # an entry from an older version: treat as absent, it will be rewritten
