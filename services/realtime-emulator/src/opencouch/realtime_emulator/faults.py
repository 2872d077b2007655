"""Limits and faults a call can be given, from its scenario or the ``X-Emulator-Faults`` header.

Header syntax: ``name`` or ``name=value`` entries separated by ``;``, list values by ``,``:
``late_transcription; drop=conversation.item.done; max_session_seconds=5``. A JSON object
with the same field names works too.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RealtimeError

FAULTS_HEADER = "X-Emulator-Faults"


class Faults(BaseModel):
    """What to do wrong, on purpose, during one call."""

    model_config = ConfigDict(extra="forbid")

    # End the session with an ``error`` (code ``session_expired``) and close, after this long.
    max_session_seconds: float | None = Field(default=None, gt=0)
    # Send ``input_audio_transcription.completed`` after the response instead of before it.
    late_transcription: bool = False
    # Event types sent twice (same event_id, as a retransmitting network would).
    duplicate: list[str] = Field(default_factory=list)
    # Event types never sent (still logged, marked dropped).
    drop: list[str] = Field(default_factory=list)
    # The next client ``response.create`` races a response the server just started itself,
    # and loses with ``conversation_already_has_active_response``.
    racing_response_create: bool = False
    # A tool the client was never offered, called once in the next reply: the client cannot
    # answer it and must not hang waiting.
    unanswered_tool_call: str | None = None
    # Abrupt connection loss: no hangup, no close event, the transport just goes away.
    drop_connection_after_seconds: float | None = Field(default=None, gt=0)
    drop_connection_after_event: str | None = None

    def overridden_by(self, other: Faults) -> Faults:
        """These faults with every field ``other`` sets explicitly taking precedence."""
        return self.model_copy(update=other.model_dump(exclude_unset=True))


def parse_faults_header(value: str | None) -> Faults:
    """Faults from the header; 400 in OpenAI's shape when it does not parse."""
    if not value or not value.strip():
        return Faults()
    text = value.strip()
    try:
        if text.startswith("{"):
            return Faults.model_validate(json.loads(text))
        fields: dict[str, Any] = {}
        for entry in filter(None, (part.strip() for part in text.split(";"))):
            name, has_value, raw = entry.partition("=")
            name = name.strip()
            if not has_value:
                fields[name] = True
            elif name in ("duplicate", "drop"):
                fields[name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                fields[name] = raw.strip()
        return Faults.model_validate(fields)
    except (ValueError, ValidationError) as error:
        raise RealtimeError(
            message=f"Invalid {FAULTS_HEADER} header: {_first_problem(error)}",
            code="invalid_value",
            param=FAULTS_HEADER,
        ) from error


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return str(error)
