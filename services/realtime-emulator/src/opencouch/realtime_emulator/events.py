"""Client events in (checked against the SDK's param types) and server event shapes out."""

from __future__ import annotations

import json
from typing import Any

from openai.types.realtime.conversation_item_create_event_param import (
    ConversationItemCreateEventParam,
)
from openai.types.realtime.conversation_item_delete_event_param import (
    ConversationItemDeleteEventParam,
)
from openai.types.realtime.conversation_item_retrieve_event_param import (
    ConversationItemRetrieveEventParam,
)
from openai.types.realtime.conversation_item_truncate_event_param import (
    ConversationItemTruncateEventParam,
)
from openai.types.realtime.input_audio_buffer_append_event_param import (
    InputAudioBufferAppendEventParam,
)
from openai.types.realtime.input_audio_buffer_clear_event_param import (
    InputAudioBufferClearEventParam,
)
from openai.types.realtime.input_audio_buffer_commit_event_param import (
    InputAudioBufferCommitEventParam,
)
from openai.types.realtime.output_audio_buffer_clear_event_param import (
    OutputAudioBufferClearEventParam,
)
from openai.types.realtime.response_cancel_event_param import ResponseCancelEventParam
from openai.types.realtime.response_create_event_param import ResponseCreateEventParam
from openai.types.realtime.session_update_event_param import SessionUpdateEventParam

from .errors import RealtimeError
from .params import check_params
from .sessions import check_session_config

# The eleven GA client events, each checked against the SDK's TypedDict for it.
CLIENT_EVENTS: dict[str, object] = {
    "session.update": SessionUpdateEventParam,
    "input_audio_buffer.append": InputAudioBufferAppendEventParam,
    "input_audio_buffer.commit": InputAudioBufferCommitEventParam,
    "input_audio_buffer.clear": InputAudioBufferClearEventParam,
    "conversation.item.create": ConversationItemCreateEventParam,
    "conversation.item.retrieve": ConversationItemRetrieveEventParam,
    "conversation.item.truncate": ConversationItemTruncateEventParam,
    "conversation.item.delete": ConversationItemDeleteEventParam,
    "response.create": ResponseCreateEventParam,
    "response.cancel": ResponseCancelEventParam,
    "output_audio_buffer.clear": OutputAudioBufferClearEventParam,
}
_MAX_EVENT_ID = 512


class ClientEventError(RealtimeError):
    """A client event OpenAI would refuse; answered with an ``error`` event naming it."""

    def __init__(self, error: RealtimeError, client_event_id: str | None) -> None:
        super().__init__(
            message=error.message,
            code=error.code,
            param=error.param,
            type=error.type,
            status=error.status,
        )
        self.client_event_id = client_event_id


def parse_client_event(text: str | bytes) -> dict[str, Any]:
    """A valid client event, or ``ClientEventError`` with OpenAI's wording."""
    try:
        event = json.loads(text)
    except ValueError as error:
        raise ClientEventError(
            RealtimeError(
                message="Invalid JSON: the event could not be parsed.", code="invalid_json"
            ),
            None,
        ) from error
    if not isinstance(event, dict):
        raise ClientEventError(
            RealtimeError(message="The event must be a JSON object.", code="invalid_event"), None
        )
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    try:
        check_client_event(event)
    except RealtimeError as error:
        raise ClientEventError(error, event_id) from error
    return event


def check_client_event(event: dict[str, Any]) -> None:
    """Raise ``RealtimeError`` unless ``event`` is a valid GA client event."""
    kind = event.get("type")
    if kind is None:
        raise RealtimeError(message="The 'type' field is missing.", code="invalid_event")
    if kind not in CLIENT_EVENTS:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
        raise RealtimeError(
            message=f"Invalid value: '{kind}'. Supported values are: {supported}.",
            code="invalid_value",
            param="type",
        )
    check_params(CLIENT_EVENTS[kind], event)
    event_id = event.get("event_id")
    if isinstance(event_id, str) and len(event_id) > _MAX_EVENT_ID:
        raise RealtimeError(
            message=f"Invalid 'event_id': string too long. Expected at most {_MAX_EVENT_ID}.",
            code="string_above_max_length",
            param="event_id",
        )
    if kind == "session.update":
        check_session_config(event["session"])


def usage(
    *,
    input_text_tokens: int,
    input_audio_tokens: int,
    output_text_tokens: int,
    output_audio_tokens: int,
) -> dict[str, Any]:
    """A ``response.done`` usage block, every detail filled as OpenAI does."""
    input_tokens = input_text_tokens + input_audio_tokens
    output_tokens = output_text_tokens + output_audio_tokens
    cached = (input_text_tokens // 2) // 64 * 64
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "image_tokens": 0,
            "cached_tokens": cached,
            "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {
            "text_tokens": output_text_tokens,
            "audio_tokens": output_audio_tokens,
        },
    }


def text_tokens(text: str) -> int:
    """Roughly four characters per token, as OpenAI's tokenizers average on English."""
    return max(1, (len(text) + 3) // 4) if text else 0


def audio_tokens(milliseconds: float, *, output: bool) -> int:
    """Audio tokens for a duration: about 10 per second in, 20 per second out."""
    per_second = 20 if output else 10
    return round(milliseconds / 1000 * per_second)
