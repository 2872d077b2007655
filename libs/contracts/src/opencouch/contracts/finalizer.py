"""The finalizer's NATS service, its record of a session's finalization, and the signed
end-of-session report it POSTs to an operator's webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field

from opencouch.contracts.common import Contract, Identifier, SessionId
from opencouch.contracts.voice_api import EndReply, Feedback, FinalizationStatus, TurnOutcome

MOOD_MAX_CHARS: Final = 40

PeakCrisisLevel = Annotated[int, Field(ge=0, le=3)]
"""0 none; 1 ambiguous distress; 2 clear self-harm or suicidal ideation; 3 imminent."""

SummaryMethod = Literal["model", "extractive"]
"""How a session arc was made: by a language model, or extracted from the words by code."""


class FinalizationRecord(Contract):
    """What finalizing a session produced, or how far it got: everything ``EndReply`` shows."""

    session_id: SessionId
    thread_id: Identifier
    status: FinalizationStatus
    turn_count: int = 0
    summary: str | None = None
    themes: list[str] = []
    mood_opened: str | None = None
    mood_closed: str | None = None
    open_loops: list[str] = []
    resolved_threads: list[str] = []
    summary_method: SummaryMethod | None = None
    """None when the session has no arc (incognito, too thin, ended without saving)."""
    duration_seconds: int | None = None
    """From the first stored turn's speech to the end; None without turns."""
    peak_crisis_level: PeakCrisisLevel | None = None
    """The highest crisis level of the session's classified turns, computed by code."""
    memories_committed: int = 0
    """Facts the session added to its owner's memory."""
    detail: str = ""
    finalized_at: datetime | None = None
    """When it reached completed or failed."""
    updated_at: datetime

    def end_reply(self) -> EndReply:
        """The ``/end`` reply (and status reply) this record makes."""
        return EndReply(
            finalized=self.status is FinalizationStatus.COMPLETED,
            status=self.status,
            session_id=self.session_id,
            thread_id=self.thread_id,
            detail=self.detail,
            summary=self.summary,
            themes=self.themes,
            mood_opened=self.mood_opened,
            mood_closed=self.mood_closed,
            turn_count=self.turn_count,
            open_loops=self.open_loops,
            resolved_threads=self.resolved_threads,
            peak_crisis_level=self.peak_crisis_level,
            memories_committed=self.memories_committed,
            finalized_at=self.finalized_at,
        )


class FinalizationStatusRequest(Contract):
    """Ask for a session's finalization."""

    session_id: SessionId


class FinalizationStatusReply(Contract):
    """The record, or None when the finalizer has not seen the session end yet."""

    record: FinalizationRecord | None


# -- the end-of-session webhook -----------------------------------------------------------------

SIGNATURE_HEADER: Final = "OpenCouch-Signature"
"""``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the shared secret>``."""
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
"""The same for every attempt at one session's report: a receiver keeps the first."""


class ReportTurn(Contract):
    """One turn of the transcript, in a report only when the operator asked for transcripts."""

    user_text: str
    assistant_text: str
    outcome: TurnOutcome
    spoken_at: datetime


class SessionReport(Contract):
    """The end-of-session report: POSTed once per session to the configured webhook.

    Carries ids, the arc and counts; no transcript unless the operator configured it.
    """

    type: Literal["session.finalized"] = "session.finalized"
    id: str
    """Unique per session; also the ``Idempotency-Key`` header."""
    session_id: SessionId
    thread_id: Identifier
    status: FinalizationStatus
    detail: str
    finalized_at: datetime | None
    turn_count: int
    duration_seconds: int | None
    peak_crisis_level: PeakCrisisLevel | None
    summary: str | None
    summary_method: SummaryMethod | None
    themes: list[str]
    mood_opened: str | None
    mood_closed: str | None
    open_loops: list[str]
    resolved_threads: list[str]
    memories_committed: int
    feedback: Feedback | None
    transcript: list[ReportTurn] | None = None
