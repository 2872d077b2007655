"""Durable events on JetStream (stream ``subjects.EVENTS_STREAM``).

Each event carries the id its publisher deduplicates on (``dedup_id``, sent as
``Nats-Msg-Id``), so a retried publish is stored once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from opencouch.contracts.common import (
    Contract,
    Identifier,
    MemoryMode,
    SessionId,
    Transcript,
    UtteranceText,
)
from opencouch.contracts.finalizer import FinalizationRecord
from opencouch.contracts.voice_api import (
    Feedback,
    Route,
    ToolCallStatus,
    TurnOutcome,
    TurnResponseStyle,
    TurnToolCall,
)


class TurnRecorded(Contract):
    """A persistent-mode turn the gateway acknowledged; memory stores it exactly once."""

    session_id: SessionId
    thread_id: Identifier
    user_id: Identifier | None = None
    client_turn_id: Identifier
    user_text: UtteranceText
    assistant_text: UtteranceText
    started_at: datetime | None = None
    """When the user started speaking; memory orders a session's turns by it."""
    route: Route
    response_style: TurnResponseStyle
    tool_calls: list[TurnToolCall] = []
    outcome: TurnOutcome
    recorded_at: datetime

    @property
    def dedup_id(self) -> str:
        """One message per (voice session, client turn id), however often it is retried."""
        return f"turn:{self.session_id}:{self.client_turn_id}"


CrisisLevel = Literal[0, 1, 2, 3]
"""0 none; 1 ambiguous distress; 2 clear self-harm or suicidal ideation; 3 imminent."""


class CrisisScreen(Contract):
    """A user utterance to classify that must leave no trace: incognito turns, sent over core
    NATS (never a stream), classified and forgotten; only a scrubbed crisis-log row may remain.
    """

    session_id: SessionId
    client_turn_id: Identifier
    user_text: UtteranceText
    transcript: Transcript = []
    resent: bool = False
    """The turn was sent again (its first request may have been screened already): screened
    once more, since nothing kept says whether the first was, and counted only if it logs."""


class SessionClosed(Contract):
    """A voice session was closed to new turns and tool calls, in any memory mode and for any
    reason. Sent over core NATS, best effort: services holding per-session scratch state (the
    tools service's crisis lookup and exercise) drop it at once rather than when it expires,
    which is what keeps an incognito session's state no longer than the session. Ids only.
    """

    session_id: SessionId
    memory_mode: MemoryMode


class TurnClassified(Contract):
    """The crisis level of a recorded turn's user speech, computed by code (never a model)."""

    session_id: SessionId
    thread_id: Identifier
    client_turn_id: Identifier
    level: CrisisLevel
    reason: Annotated[str, Field(max_length=64)]
    """A reason code (e.g. ``explicit_ideation``, ``idiom``), never user text."""
    classified_at: datetime

    @property
    def dedup_id(self) -> str:
        """One classification per turn."""
        return f"classified:{self.session_id}:{self.client_turn_id}"


class ToolActivity(Contract):
    """A tool call the gateway forwarded, for audit and transcripts (no arguments or output)."""

    session_id: SessionId
    thread_id: Identifier
    tool_name: str
    status: ToolCallStatus
    client_turn_id: Identifier | None = None
    at: datetime


class SessionEnded(Contract):
    """A persistent session was ended; the finalizer finalizes it exactly once."""

    session_id: SessionId
    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode
    feedback: Feedback | None = None
    save: bool = True
    """False: the user ended without saving; no arc and no new memories."""
    expected_turn_count: int
    """Turns the gateway acknowledged; finalization waits until memory has stored them all."""
    ended_at: datetime

    @property
    def dedup_id(self) -> str:
        """One end per session."""
        return f"end:{self.session_id}"


class SessionFinalized(Contract):
    """The outcome of finalizing a session (completed or failed)."""

    record: FinalizationRecord

    @property
    def dedup_id(self) -> str:
        """One result per session and status."""
        return f"finalized:{self.record.session_id}:{self.record.status}"


class OwnerErased(Contract):
    """A user (or an anonymous thread) asked to forget everything.

    Memory publishes it once it has erased its own tables and copies; every other service that
    keeps anything of these sessions drops it when it sees this. A retry of an unfinished erasure
    announces its sessions again (with any found since) under a new id: handling it is
    idempotent. Carries ids only, never content.
    """

    erasure_id: Identifier
    session_ids: list[SessionId]
    thread_ids: list[Identifier]
    erased_at: datetime

    @property
    def dedup_id(self) -> str:
        """One event per erasure attempt (memory's sweep finishing it sends the same one)."""
        return f"erased:{self.erasure_id}"
