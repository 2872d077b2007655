"""Types shared by every contract: identifiers, memory modes, the error body."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


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

# NUL and lone surrogates pass JSON parsing but no store takes them: Postgres refuses NUL in
# text and jsonb, and a lone surrogate cannot be encoded as UTF-8 at all.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    if _UNSTORABLE.search(text):
        raise ValueError("text contains a NUL character or an unpaired surrogate")
    return text


StorableText = Annotated[str, AfterValidator(_storable)]
"""Text every store can keep: no NUL, no unpaired surrogate."""

UTTERANCE_MAX_CHARS: Final = 8000
UtteranceText = Annotated[
    str, StringConstraints(max_length=UTTERANCE_MAX_CHARS), AfterValidator(_storable)
]
"""What one speaker said in one turn."""

JSON_MAX_DEPTH: Final = 8
JSON_MAX_BYTES: Final = 16 * 1024


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse JSON too deep or too large to carry, or holding text no store can keep.

    The value is encoded to measure its size only when the walk's bound says it may be over
    the limit: tool arguments and outputs, checked at every hop of every call, are almost
    always far below it.
    """
    most = _checked_size_bound(value)
    if (
        most > JSON_MAX_BYTES
        and len(json.dumps(value, ensure_ascii=False).encode()) > JSON_MAX_BYTES
    ):
        raise ValueError(f"JSON larger than {JSON_MAX_BYTES} bytes")
    return value


def _checked_size_bound(value: Any) -> int:
    """Check ``value``'s depth and text; return a bound (from above) of its size encoded as
    ``json.dumps(value, ensure_ascii=False)``, in bytes.

    Walks iteratively, so a hostile depth cannot exhaust the stack before it is refused.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    most = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > JSON_MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
        if isinstance(node, dict):
            most += 2
            for key, item in node.items():
                _storable(key)
                most += _most_bytes(key) + 6  # the key (quoted, if it is not text), ": ", ", "
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            most += 2 + 2 * len(node)
            stack.extend((item, depth + 1) for item in node)
        else:
            if isinstance(node, str):
                _storable(node)
            most += _most_bytes(node)
    return most


_MOST_FLOAT_BYTES: Final = 24
"""``-1.7976931348623157e+308``, the longest a float is written; NaN and the infinities less."""


def _most_bytes(scalar: Any) -> int:
    """The most bytes ``scalar`` can take in ``json.dumps(..., ensure_ascii=False)``: a character
    of a string is at most six (an escaped control character, ``\\u001f``), quotes aside."""
    if isinstance(scalar, str):
        return 6 * len(scalar) + 2
    if scalar is None or isinstance(scalar, bool):
        return 5
    if isinstance(scalar, int):
        return len(str(scalar))
    if isinstance(scalar, float):
        return _MOST_FLOAT_BYTES
    return JSON_MAX_BYTES + 1  # not JSON's own: measured by encoding it


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""A JSON object from a client (tool arguments or outputs), bounded in depth and size."""


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
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VOICE_SESSION_NOT_FOUND = "voice_session_not_found"
    TURN_CONFLICT = "turn_conflict"
    REALTIME_UNAVAILABLE = "realtime_unavailable"
    SERVICE_UNAVAILABLE = "service_unavailable"
    SERVICE_TIMEOUT = "service_timeout"
    INTERNAL = "internal_error"
    # Who may call: the voice-session token, the user's identity, the thread's owner.
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_MISMATCH = "token_mismatch"
    IDENTITY_REQUIRED = "identity_required"
    IDENTITY_INVALID = "identity_invalid"
    THREAD_FORBIDDEN = "thread_forbidden"
    # The session's life and its limits.
    SESSION_ENDED = "session_ended"
    SESSION_EXPIRED = "session_expired"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_SESSIONS = "too_many_sessions"
    CALL_ID_MISSING = "call_id_missing"
    CALL_CONFLICT = "call_conflict"
    # Tool outputs: the model hears these and can speak around them.
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    TOOL_NOT_IN_MODE = "tool_not_available_in_memory_mode"
    TOOL_TIMEOUT = "tool_timeout"
    TOOL_UNAVAILABLE = "tool_unavailable"
    TOOL_FAILED = "tool_failed"
    # Tool refusals: the tool ran and declined, for a reason the model can explain.
    USER_INTENT_NOT_VERIFIED = "user_intent_not_verified"
    OWNER_OR_SESSION_MISSING = "owner_or_session_missing"
    MEMORY_OFF = "memory_off"
    RECALL_OFF = "proactive_recall_off"


class ErrorBody(Contract):
    """What went wrong, for a program (``code``) and a person (``message``)."""

    code: ErrorCode
    message: Annotated[str, Field(max_length=500)]


class ErrorResponse(Contract):
    """The body of every 4xx/5xx HTTP reply and every NATS error reply."""

    error: ErrorBody


class HeldNote(Contract):
    """An owner still holds a request: sent now and then, while it works on one, to the subject
    its caller named for them (``subjects.held_notes``). A caller that stops hearing them knows
    the instance holding its request has gone, whatever other instances still run."""

    instance_id: Annotated[str, Field(min_length=1, max_length=64)]
    """The nats.micro id of the instance that holds the request."""


class TranscriptLine(Contract):
    """One line of the recent conversation, as the browser heard it."""

    role: Literal["user", "assistant"]
    text: UtteranceText


TRANSCRIPT_MAX_LINES: Final = 20
TRANSCRIPT_MAX_CHARS: Final = 24000


def _bounded_transcript(lines: list[TranscriptLine]) -> list[TranscriptLine]:
    if sum(len(line.text) for line in lines) > TRANSCRIPT_MAX_CHARS:
        raise ValueError(f"transcript longer than {TRANSCRIPT_MAX_CHARS} characters in all")
    return lines


Transcript = Annotated[
    list[TranscriptLine],
    Field(max_length=TRANSCRIPT_MAX_LINES),
    AfterValidator(_bounded_transcript),
]
"""The recent conversation a tool call carries: its last lines, bounded in count and size."""
