"""The memory service's NATS requests and replies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from opencouch.contracts.common import Contract, Identifier, MemoryMode, SessionId
from opencouch.contracts.voice_api import Route, TurnOutcome, TurnResponseStyle, TurnToolCall

MEMORY_CONTEXT_MAX_CHARS = 2000


class MemoryContextRequest(Contract):
    """Ask what a new voice session may know privately about its owner."""

    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode


class MemoryContextReply(Contract):
    """Private context for the instructions; empty in incognito."""

    memory_mode: MemoryMode
    context_text: Annotated[str, Field(max_length=MEMORY_CONTEXT_MAX_CHARS)] = ""
    proactive_recall_enabled: bool = False
    message_count: int = 0
    """Messages already stored in the thread (two per turn)."""


class SessionTranscriptRequest(Contract):
    """Ask for every stored turn of one voice session."""

    session_id: SessionId


class StoredTurn(Contract):
    """One turn as memory stored it."""

    client_turn_id: Identifier
    user_text: str
    assistant_text: str
    route: Route
    response_style: TurnResponseStyle
    tool_calls: list[TurnToolCall] = []
    outcome: TurnOutcome
    recorded_at: datetime


class SessionTranscriptReply(Contract):
    """The session's turns in the order they were recorded."""

    session_id: SessionId
    thread_id: Identifier | None
    turns: list[StoredTurn]


# -- memory tool outputs ------------------------------------------------------------------------

MemoryKind = Literal["fact", "session", "rule"]


class MemorySource(Contract):
    """Where a memory came from, so the user can ask."""

    session_id: SessionId | None = None
    recorded_at: datetime


class MemoryItem(Contract):
    """One saved memory as the user is shown it; ``index`` is 1-based within its kind."""

    kind: MemoryKind
    index: int
    text: str
    source: MemorySource


class MemoryStatusOutput(Contract):
    """Whether memory is on in this session, and what it keeps."""

    status: Literal["ok"] = "ok"
    memory_mode: MemoryMode
    memory_enabled: bool
    proactive_recall_enabled: bool
    kept: list[str]
    summary: str


class SavedMemoryOutput(Contract):
    """Everything saved for the owner, numbered per kind, newest first."""

    status: Literal["ok"] = "ok"
    facts: list[MemoryItem]
    sessions: list[MemoryItem]
    rules: list[MemoryItem]
    proactive_recall_enabled: bool
    guidance: str


class RecallOutput(Contract):
    """Saved facts and session summaries relevant to a query, best match first."""

    status: Literal["found", "nothing_found"]
    items: list[MemoryItem]
    guidance: str


class MemoryChangeOutput(Contract):
    """A preference saved, or the recall flag set."""

    status: Literal["saved", "updated", "unchanged"]
    detail: str
    proactive_recall_enabled: bool | None = None


class DeletionOutput(Contract):
    """A deletion staged, listed as candidates, done or dropped."""

    status: Literal["staged", "ambiguous", "not_found", "deleted", "nothing_staged", "cancelled"]
    staged: MemoryItem | None = None
    candidates: list[MemoryItem] = []
    deleted: int = 0
    guidance: str
