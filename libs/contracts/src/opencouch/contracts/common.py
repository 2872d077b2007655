"""Types shared by every contract: identifiers, memory modes, the error body."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class Contract(BaseModel):
    """Base of every boundary model: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Identifiers travel in Redis keys, NATS subjects and message-id headers, so they are kept to a
# conservative alphabet; anything else is rejected at the edge with a 4xx.
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"),
]
"""An opaque id chosen by a client: thread, user, client turn. 1-128 safe characters."""

SessionId = Annotated[str, StringConstraints(pattern=r"^vs_[0-9a-f]{32}$")]
"""A voice session id minted by the gateway: ``vs_`` and 32 hex digits (subject-safe)."""

UtteranceText = Annotated[str, StringConstraints(max_length=8000)]
"""What one speaker said in one turn."""


class MemoryMode(StrEnum):
    """How much of a voice session may be kept."""

    INCOGNITO = "incognito"
    PERSISTENT = "persistent"

    def floor(self, requested: MemoryMode) -> MemoryMode:
        """The mode a request may run in: incognito is a floor a request can never raise."""
        if self is MemoryMode.INCOGNITO:
            return MemoryMode.INCOGNITO
        return requested


AssistantVoice = Literal[
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse"
]
"""The Realtime voices a user may pick for the assistant."""


class ErrorCode(StrEnum):
    """Machine-readable error codes, shared by HTTP replies, NATS replies and tool outputs."""

    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    VOICE_SESSION_NOT_FOUND = "voice_session_not_found"
    TURN_CONFLICT = "turn_conflict"
    REALTIME_UNAVAILABLE = "realtime_unavailable"
    SERVICE_UNAVAILABLE = "service_unavailable"
    SERVICE_TIMEOUT = "service_timeout"
    INTERNAL = "internal_error"
    # Tool outputs: the model hears these and can speak around them.
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    TOOL_NOT_IN_MODE = "tool_not_available_in_memory_mode"
    TOOL_TIMEOUT = "tool_timeout"
    TOOL_UNAVAILABLE = "tool_unavailable"
    TOOL_FAILED = "tool_failed"


class ErrorBody(Contract):
    """What went wrong, for a program (``code``) and a person (``message``)."""

    code: ErrorCode
    message: Annotated[str, Field(max_length=500)]


class ErrorResponse(Contract):
    """The body of every 4xx/5xx HTTP reply and every NATS error reply."""

    error: ErrorBody


class TranscriptLine(Contract):
    """One line of the recent conversation, as the browser heard it."""

    role: Literal["user", "assistant"]
    text: UtteranceText
