"""Thin handlers for memory's NATS requests and its JetStream consumers."""

from __future__ import annotations

import logging

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import TurnClassified, TurnRecorded
from opencouch.contracts.memory import (
    TRANSCRIPT_PAGE_MAX_BYTES,
    CommitMemoryCandidatesReply,
    CommitMemoryCandidatesRequest,
    EraseMemoryReply,
    EraseMemoryRequest,
    MemoryContextReply,
    MemoryContextRequest,
    SessionTranscriptReply,
    SessionTranscriptRequest,
    SessionTurnCountsReply,
    SessionTurnCountsRequest,
    StoredTurn,
    ThreadHistoryReply,
    ThreadHistoryRequest,
)
from opencouch.memory.candidates import CandidateStore
from opencouch.memory.context import CONTEXT_FACTS, compose_context
from opencouch.memory.erasure import Eraser
from opencouch.memory.extraction import CandidateExtractor
from opencouch.memory.memory_store import MemoryStore
from opencouch.memory.policy import owner_key, require_persistent
from opencouch.memory.store import Recorded, TranscriptStore, cursor_of, row_of
from opencouch.runtime.errors import ServiceError

log = logging.getLogger(__name__)


def _fill_page(
    rows: list[tuple[int, StoredTurn]], limit: int
) -> tuple[list[tuple[int, StoredTurn]], bool]:
    """The first ``limit`` rows, ending early once they hold ``TRANSCRIPT_PAGE_MAX_BYTES`` of
    turns as UTF-8 JSON (always at least one), and whether any row was left for a next page.
    """
    page: list[tuple[int, StoredTurn]] = []
    size = 0
    for row_id, turn in rows[:limit]:
        size += len(turn.model_dump_json().encode())
        if page and size > TRANSCRIPT_PAGE_MAX_BYTES:
            break
        page.append((row_id, turn))
    return page, len(page) < len(rows)


class MemoryHandlers:
    """Memory context, transcripts, commits and erasure, and the two event consumers."""

    def __init__(
        self,
        transcripts: TranscriptStore,
        memory: MemoryStore,
        candidates: CandidateStore,
        extractor: CandidateExtractor,
        eraser: Eraser,
    ) -> None:
        self._transcripts = transcripts
        self._memory = memory
        self._candidates = candidates
        self._extractor = extractor
        self._eraser = eraser

    async def memory_context(self, request: MemoryContextRequest) -> MemoryContextReply:
        """Nothing in incognito; else preferences, the recall flag and, with recall, facts."""
        if request.memory_mode is MemoryMode.INCOGNITO:
            return MemoryContextReply(memory_mode=MemoryMode.INCOGNITO)
        owner = owner_key(request.thread_id, request.user_id)
        recall = await self._memory.proactive_recall_enabled(owner)
        facts = (
            [item.text for item in await self._memory.newest(owner, "fact", CONTEXT_FACTS)]
            if recall
            else []
        )
        return MemoryContextReply(
            memory_mode=MemoryMode.PERSISTENT,
            context_text=compose_context(await self._memory.rules(owner), recall, facts),
            proactive_recall_enabled=recall,
            message_count=await self._transcripts.message_count(request.thread_id),
        )

    async def session_transcript(self, request: SessionTranscriptRequest) -> SessionTranscriptReply:
        """A page of a session's stored turns in speech order, and its peak crisis level.

        The page stops early once it holds ``TRANSCRIPT_PAGE_MAX_BYTES`` of turns (always at
        least one), counted in bytes as sent, so no reply nears NATS's payload limit however
        long the turns are, in whatever script.
        """
        after = None
        if request.after is not None:
            after = row_of(request.after)
            if after is None:
                raise ServiceError(ErrorCode.INVALID_REQUEST, "after: not a cursor of this API")
        thread_id, rows = await self._transcripts.session_page(
            request.session_id, after, request.limit
        )
        page, more = _fill_page(rows, request.limit)
        classified, peak = await self._transcripts.session_crisis(request.session_id)
        return SessionTranscriptReply(
            session_id=request.session_id,
            thread_id=thread_id,
            turns=[turn for _, turn in page],
            after=cursor_of(page[-1][0]) if page and more else None,
            classified_turns=classified,
            peak_crisis_level=peak,
        )

    async def session_counts(self, request: SessionTurnCountsRequest) -> SessionTurnCountsReply:
        """How many of the session's turns are stored and classified, and their peak level."""
        counts = await self._transcripts.session_counts(request.session_id)
        return SessionTurnCountsReply(session_id=request.session_id, **counts)

    async def thread_turns(self, request: ThreadHistoryRequest) -> ThreadHistoryReply:
        """A page of the thread's stored turns: the newest, or those older than ``before``.

        Like a session's page, it stops early (at its oldest turn so far, with a cursor to the
        older ones) once it holds ``TRANSCRIPT_PAGE_MAX_BYTES`` of turns.
        """
        before = None
        if request.before is not None:
            before = row_of(request.before)
            if before is None:
                raise ServiceError(ErrorCode.INVALID_REQUEST, "before: not a cursor of this API")
        rows = await self._transcripts.thread_page(request.thread_id, before, request.limit)
        page, more = _fill_page(rows, request.limit)  # newest first
        return ThreadHistoryReply(
            thread_id=request.thread_id,
            turns=[turn for _, turn in reversed(page)],
            before=cursor_of(page[-1][0]) if page and more else None,
        )

    async def commit_candidates(
        self, request: CommitMemoryCandidatesRequest
    ) -> CommitMemoryCandidatesReply:
        """Keep a finished session's candidates and summary, once; or drop them unsaved."""
        require_persistent(request.memory_mode)
        held = await self._candidates.held(request.session_id)
        if not request.save:
            dropped = await self._candidates.drop_session(request.session_id)
            return CommitMemoryCandidatesReply(
                session_id=request.session_id,
                facts_committed=0,
                summary_stored=False,
                discarded=dropped,
            )
        result = await self._memory.commit(
            session_id=request.session_id,
            thread_id=request.thread_id,
            owner=owner_key(request.thread_id, request.user_id),
            facts=held,
            summary=request.summary,
        )
        await self._candidates.drop_session(request.session_id)
        log.info(
            "memory candidates committed",
            extra={
                "session_id": request.session_id,
                "facts": result.facts_committed,
                "already": result.already_committed,
            },
        )
        return CommitMemoryCandidatesReply(
            session_id=request.session_id,
            facts_committed=result.facts_committed,
            summary_stored=result.summary_stored,
            already_committed=result.already_committed,
            discarded=0 if result.already_committed else len(held) - result.facts_committed,
        )

    async def erase(self, request: EraseMemoryRequest) -> EraseMemoryReply:
        """Erase all durable memory and transcripts of a user, or of one thread."""
        return await self._eraser.erase(
            user_id=request.user_id,
            thread_id=request.thread_id,
            session_ids=request.session_ids,
            thread_ids=request.thread_ids,
        )

    async def on_turn_recorded(self, turn: TurnRecorded) -> None:
        """Hold the facts a turn's user stated for the session's commit, then store the turn
        once; a turn of an erased session is dropped, and what it held with it.

        Held first: the finalizer commits a session once its turns are stored, so a stored turn
        must already have its facts held (a failure in between redelivers the turn, and holding
        again changes nothing). An erasure in between finds the turn not stored, and the turn
        finds its session erased. A turn stored before held its facts then: what it held was
        since committed, dropped unsaved or deleted by the person, and is not held again. A turn
        stored meanwhile by another delivery of it (two replicas) may count on what this one
        held: that stays held.
        """
        if await self._transcripts.turn_stored(turn.session_id, turn.client_turn_id):
            log.info(
                "turn already stored",
                extra={"session_id": turn.session_id, "client_turn_id": turn.client_turn_id},
            )
            return
        await self._candidates.hold(
            session_id=turn.session_id,
            thread_id=turn.thread_id,
            owner=owner_key(turn.thread_id, turn.user_id),
            client_turn_id=turn.client_turn_id,
            stated_at=turn.started_at or turn.recorded_at,
            facts=self._extractor.extract(turn.user_text),
        )
        recorded = await self._transcripts.record_turn(turn)
        if recorded is Recorded.SESSION_ERASED:
            await self._candidates.drop_session(turn.session_id)
            log.info(
                "turn of an erased session dropped",
                extra={"session_id": turn.session_id, "client_turn_id": turn.client_turn_id},
            )
            return
        log.info(
            "turn stored" if recorded is Recorded.STORED else "turn already stored",
            extra={"session_id": turn.session_id, "client_turn_id": turn.client_turn_id},
        )

    async def on_turn_classified(self, event: TurnClassified) -> None:
        """Keep a turn's crisis level, so a session's peak is one query; a classification of
        an erased session's turn is dropped."""
        if not await self._transcripts.record_classification(event):
            log.info(
                "classification of an erased session dropped",
                extra={"session_id": event.session_id, "client_turn_id": event.client_turn_id},
            )
