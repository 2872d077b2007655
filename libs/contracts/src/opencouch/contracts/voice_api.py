"""Bodies and replies of the public voice API, ``/api/voice/realtime/*``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from opencouch.contracts.common import (
    AssistantVoice,
    Contract,
    Identifier,
    MemoryMode,
    SessionId,
    TranscriptLine,
    UtteranceText,
)
from opencouch.contracts.realtime import ClientSecret, RealtimeSessionConfig

# -- POST /session ----------------------------------------------------------------------------


class SessionRequest(Contract):
    """Start a voice session for a web thread."""

    thread_id: Identifier
    user_id: Identifier | None = None
    memory_mode: MemoryMode = MemoryMode.INCOGNITO
    assistant_voice: AssistantVoice = "cedar"


class SessionReply(Contract):
    """What the browser needs to open WebRTC to Realtime: a client secret and where to call."""

    session_id: SessionId
    thread_id: Identifier
    memory_mode: MemoryMode
    client_secret: ClientSecret
    realtime_calls_url: str
    """Where the browser posts its SDP offer, with the client secret as bearer."""
    session: RealtimeSessionConfig


# -- POST /tools ------------------------------------------------------------------------------


class ToolsRequest(Contract):
    """A function call the model made, forwarded by the browser."""

    thread_id: Identifier
    session_id: SessionId | None = None
    """The session from ``/session``; when absent, the thread's current session."""
    user_id: Identifier | None = None
    memory_mode: MemoryMode = MemoryMode.INCOGNITO
    tool_name: Annotated[str, Field(min_length=1, max_length=64)]
    arguments: dict[str, Any] = {}
    current_user_message: UtteranceText = ""
    transcript: Annotated[list[TranscriptLine], Field(max_length=50)] = []
    client_turn_id: Identifier | None = None


class ToolsReply(Contract):
    """The tool's output, to send back to Realtime as a ``function_call_output``."""

    output: dict[str, Any]


# -- POST /turn -------------------------------------------------------------------------------


class ToolCallStatus(StrEnum):
    """How far a tool call in a turn got."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"


class TurnToolCall(Contract):
    """A tool call made during a turn, as the browser saw it."""

    tool_name: Annotated[str, Field(min_length=1, max_length=64)]
    status: ToolCallStatus
    output: dict[str, Any] | None = None
    error: Annotated[str, Field(max_length=500)] | None = None


class TurnOutcome(StrEnum):
    """How a turn ended."""

    COMPLETED = "completed"
    CONNECTION_INTERRUPTED = "connection_interrupted"
    SAFETY_INTERRUPTED = "safety_interrupted"


Route = Literal["therapeutic", "crisis", "grounded_lookup", "memory_control", "guided_exercise"]
TurnResponseStyle = Literal[
    "voice", "crisis_response", "grounded_lookup", "memory_control", "guided_exercise"
]


class TurnRequest(Contract):
    """A finished exchange: what the user said and what the assistant said back."""

    thread_id: Identifier
    session_id: SessionId | None = None
    """The session from ``/session``; when absent, the thread's current session."""
    user_id: Identifier | None = None
    memory_mode: MemoryMode = MemoryMode.INCOGNITO
    client_turn_id: Identifier
    """Chosen by the browser; a retry sends the same id and the same body."""
    user_text: UtteranceText
    assistant_text: UtteranceText
    route: Route | None = None
    response_style: TurnResponseStyle | None = None
    tool_calls: Annotated[list[TurnToolCall], Field(max_length=20)] = []
    outcome: TurnOutcome = TurnOutcome.COMPLETED


class TurnReply(Contract):
    """Whether the turn is now durably recorded, and the thread's message count."""

    recorded: bool
    thread_id: Identifier
    message_count: int


# -- POST /end --------------------------------------------------------------------------------


class Feedback(StrEnum):
    """The user's optional verdict on the session."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    SKIP = "skip"


class FinalizationStatus(StrEnum):
    """Where a session's finalization is: pending -> in_progress -> completed | failed."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class EndRequest(Contract):
    """End a voice session and, in persistent mode, finalize it."""

    thread_id: Identifier
    session_id: SessionId | None = None
    """The session from ``/session``; when absent, the thread's current session."""
    memory_mode: MemoryMode = MemoryMode.INCOGNITO
    feedback: Feedback | None = None


class EndReply(Contract):
    """The finalization result, or its status while it is still running."""

    finalized: bool
    status: FinalizationStatus | None
    """None in incognito, where nothing is finalized."""
    session_id: SessionId
    thread_id: Identifier
    detail: str
    summary: str | None = None
    themes: list[str] = []
    mood_opened: str | None = None
    mood_closed: str | None = None
    turn_count: int = 0
    open_loops: list[str] = []
    resolved_threads: list[str] = []
    finalized_at: datetime | None = None
