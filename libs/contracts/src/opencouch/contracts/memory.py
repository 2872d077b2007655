"""The memory service's NATS requests and replies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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
