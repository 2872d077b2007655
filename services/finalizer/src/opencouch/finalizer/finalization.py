"""Finalizing one ended session, once: wait for memory, draft the arc, commit, record.

Every replica may receive a session's end (a redelivery, a second end after the duplicate
window), so each step is safe to repeat: one replica at a time works on a session (an
advisory lock), the arc it drafts is kept for any later attempt, memory's commit is
idempotent, and only a conditional update records the result. Waiting for memory is
bounded by time, not by luck: ``memory_wait_seconds`` after the end was first seen, the
session fails with what it was waiting for, and its end goes to the dead letters.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TypeVar

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.contracts.finalizer import FinalizationRecord
from opencouch.contracts.memory import (
    CommitMemoryCandidatesRequest,
    SessionSummary,
    SessionTurnCountsReply,
)
from opencouch.contracts.voice_api import FinalizationStatus
from opencouch.finalizer.arc import (
    MIN_SUBSTANTIVE_TURNS,
    SessionArc,
    SpokenTurn,
    Summariser,
    substantive_turns,
)
from opencouch.finalizer.memory_link import MemoryLink
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import Attempt, Completion, FinalizationStore
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.jetstream import GiveUp, RetryLater
from opencouch.runtime.metrics import record_finalization

log = logging.getLogger(__name__)

T = TypeVar("T")

FINAL: Final = (FinalizationStatus.COMPLETED, FinalizationStatus.FAILED)
# Memory errors worth waiting out; any other refusal will not change by waiting.
_TRANSIENT: Final = (ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.SERVICE_TIMEOUT, ErrorCode.INTERNAL)
_BUSY_RETRY_SECONDS: Final = 2.0
UNSAVED_DETAIL: Final = "Ended without saving: no summary and no new memories were kept."


def owner_digest(event: SessionEnded) -> str:
    """The opaque id of the session's owner a provider may see (as the gateway sends it)."""
    return hashlib.sha256((event.user_id or event.thread_id).encode()).hexdigest()


class Finalizer:
    """Finalizes ended sessions over the store, memory and a summariser."""

    def __init__(
        self,
        store: FinalizationStore,
        memory: MemoryLink,
        summariser: Summariser,
        announce: Callable[[FinalizationRecord], Awaitable[None]],
        settings: FinalizerSettings,
    ) -> None:
        self._store = store
        self._memory = memory
        self._summariser = summariser
        self._announce = announce
        self._settings = settings
        self._reports = settings.webhook_url is not None

    async def finalize(self, event: SessionEnded) -> None:
        """Finalize the session once; an end seen again announces the stored result."""
        if event.memory_mode is MemoryMode.INCOGNITO:
            # The gateway never publishes these; if one comes, it must leave nothing behind.
            log.warning("incognito session end: nothing to finalize", extra=_ids(event))
            return
        record = await self._store.open(event.session_id, event.thread_id)
        if record is None:
            log.info("session end of an erased session: nothing kept", extra=_ids(event))
            return
        if record.status in FINAL:
            await self._announce(record)
            return
        async with self._store.exclusive(event.session_id) as held:
            if not held:
                raise RetryLater("another replica is finalizing the session", _BUSY_RETRY_SECONDS)
            final = await self._attempt(event)
        if final is not None and final.status in FINAL:
            await self._announce(final)

    async def give_up(self, event: SessionEnded) -> None:
        """The session's end will not be delivered again: record the failure and why."""
        if event.memory_mode is MemoryMode.INCOGNITO:
            return
        failed = await self._store.fail(
            event.session_id,
            report=self._reports,
            feedback=event.feedback,
            feedback_days=self._settings.feedback_retention_days,
            turn_count=event.expected_turn_count,
        )
        if failed is not None:
            record_finalization("failed", event.ended_at)  # duration since the session ended
            log.error("session finalization failed", extra=_ids(event))
            await self._announce(failed)

    async def _attempt(self, event: SessionEnded) -> FinalizationRecord | None:
        attempt = await self._store.start(event.session_id)
        if attempt is None:  # final since we looked (another replica), or erased
            return await self._store.get(event.session_id)
        counts = await self._ask(
            event, attempt, "memory's turn counts", self._memory.counts(event.session_id)
        )
        await self._store.note_seen(event.session_id, counts.stored_turns, counts.peak_crisis_level)
        if counts.stored_turns < event.expected_turn_count:
            await self._wait(
                event,
                attempt,
                f"memory holds {counts.stored_turns} of the "
                f"{event.expected_turn_count} acknowledged turns",
            )
        unclassified = counts.stored_turns - counts.classified_turns
        if unclassified and attempt.waited_seconds < self._settings.memory_wait_seconds:
            await self._wait(
                event,
                attempt,
                f"{unclassified} of {counts.stored_turns} turns have no crisis level yet",
            )
        arc, no_arc = await self._arc(event, attempt, counts)
        if await self._store.is_erased(event.session_id):
            return None  # forgotten meanwhile: commit nothing more to memory
        commit = await self._ask(
            event,
            attempt,
            "memory's commit",
            self._memory.commit(
                CommitMemoryCandidatesRequest(
                    session_id=event.session_id,
                    thread_id=event.thread_id,
                    user_id=event.user_id,
                    memory_mode=event.memory_mode,
                    save=event.save,
                    summary=_summary(arc, event) if arc else None,
                )
            ),
        )
        completion = Completion(
            turn_count=counts.stored_turns,
            duration_seconds=_duration(counts, event),
            peak_crisis_level=counts.peak_crisis_level,
            memories_committed=commit.facts_committed,
            arc=arc,
            detail=_detail(counts, arc, no_arc, commit.facts_committed),
        )
        record = await self._store.complete(
            event.session_id,
            completion,
            feedback=event.feedback,
            feedback_days=self._settings.feedback_retention_days,
            report=self._reports,
        )
        if record is not None:
            record_finalization("completed", event.ended_at)  # duration since the session ended
            log.info(
                "session finalized",
                extra={
                    **_ids(event),
                    "turn_count": record.turn_count,
                    "arc": record.summary_method or "none",
                    "attempt": attempt.number,
                },
            )
            return record
        return await self._store.get(event.session_id)

    async def _arc(
        self, event: SessionEnded, attempt: Attempt, counts: SessionTurnCountsReply
    ) -> tuple[SessionArc | None, str]:
        """The session's arc, or None and why there is none."""
        if not event.save:
            return None, UNSAVED_DETAIL
        if attempt.arc is not None:
            return attempt.arc, ""
        if counts.stored_turns < MIN_SUBSTANTIVE_TURNS:
            return None, _too_thin(counts.stored_turns, "user turn")
        stored = await self._ask(
            event, attempt, "the transcript", self._memory.transcript(event.session_id)
        )
        turns = [
            SpokenTurn(
                user_text=turn.user_text,
                assistant_text=turn.assistant_text,
                outcome=turn.outcome,
                spoken_at=turn.started_at or turn.recorded_at,
            )
            for turn in stored
        ]
        said = substantive_turns(turns)
        if said < MIN_SUBSTANTIVE_TURNS:
            return None, _too_thin(said, "substantive user turn")
        arc = await self._summariser.summarise(turns, owner_digest=owner_digest(event))
        await self._store.keep_arc(event.session_id, arc)
        return arc, ""

    async def _ask(self, event: SessionEnded, attempt: Attempt, what: str, call: Awaitable[T]) -> T:
        """``call``'s answer; memory not answering is waited out like missing turns."""
        try:
            return await call
        except ServiceError as error:
            if error.code not in _TRANSIENT:
                await self._store.note_wait(event.session_id, f"memory refused {what}")
                raise GiveUp(f"memory refused {what}: {error.code}") from None
            await self._wait(event, attempt, f"memory did not answer ({what})")

    async def _wait(self, event: SessionEnded, attempt: Attempt, reason: str) -> NoReturn:
        """Not yet: try again after a back-off, or give up once waited long enough."""
        await self._store.note_wait(event.session_id, reason)
        if attempt.waited_seconds >= self._settings.memory_wait_seconds:
            raise GiveUp(reason)
        delay = min(
            self._settings.retry_first_delay_seconds * 2.0 ** min(attempt.number - 1, 16),
            self._settings.retry_max_delay_seconds,
        )
        raise RetryLater(reason, delay)


def _ids(event: SessionEnded) -> dict[str, str]:
    return {"session_id": event.session_id, "thread_id": event.thread_id}


def _summary(arc: SessionArc, event: SessionEnded) -> SessionSummary:
    return SessionSummary(summary=arc.summary, themes=list(arc.themes), ended_at=event.ended_at)


def _duration(counts: SessionTurnCountsReply, event: SessionEnded) -> int | None:
    if counts.first_spoken_at is None:
        return None
    return max(0, round((event.ended_at - counts.first_spoken_at).total_seconds()))


def _too_thin(count: int, what: str) -> str:
    return (
        f"Too short for a session summary: {count} {what}{'' if count == 1 else 's'}, "
        f"and a summary needs {MIN_SUBSTANTIVE_TURNS} substantive user turns."
    )


def _detail(
    counts: SessionTurnCountsReply, arc: SessionArc | None, no_arc: str, memories: int
) -> str:
    turns = counts.stored_turns
    parts = [f"Finalized {turns} {'turn' if turns == 1 else 'turns'}."]
    if arc is not None:
        parts.append("The session summary was saved to memory.")
    elif no_arc:
        parts.append(no_arc)
    if memories:
        parts.append(f"{memories} new {'memory' if memories == 1 else 'memories'} saved.")
    unclassified = counts.stored_turns - counts.classified_turns
    if unclassified:
        parts.append(
            f"The peak crisis level covers {counts.classified_turns} of {turns} turns; "
            "the others were not classified in time."
        )
    return " ".join(parts)
