"""Client events: OpenAI's documented examples pass, broken ones get OpenAI's error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opencouch.realtime_emulator.errors import RealtimeError
from opencouch.realtime_emulator.events import CLIENT_EVENTS, check_client_event
from opencouch.testing.openai_spec import official_spec, validate_against


def documented_examples() -> list[tuple[str, dict[str, Any]]]:
    """The examples in the official spec; none when it is not beside the clone."""
    spec = official_spec()
    if spec is None:
        return []
    examples = []
    for name, schema in spec["components"]["schemas"].items():
        example = schema.get("x-oaiMeta", {}).get("example")
        if not name.startswith("RealtimeClientEvent") or not example:
            continue
        try:
            event = json.loads(example)
        except ValueError:
            continue  # a few examples carry comments; they are not JSON
        if event.get("type") in CLIENT_EVENTS:
            examples.append((name, event))
    return examples


@pytest.mark.parametrize(
    ("name", "event"), documented_examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_documented_examples_are_accepted(name: str, event: dict[str, Any]) -> None:
    validate_against("RealtimeClientEvent", event)
    check_client_event(event)


def test_every_ga_client_event_is_known() -> None:
    assert len(CLIENT_EVENTS) == 11
    if official_spec() is not None:
        assert len(documented_examples()) >= 10


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
        (
            {"type": "response.create", "response": {"tool_choice": "sometimes"}},
            "invalid_value",
            "response.tool_choice",
        ),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "i",
                "content_index": 0,
                "audio_end_ms": True,
            },
            "invalid_type",
            "audio_end_ms",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"output": {"speed": 3}}},
            },
            "integer_above_max_value",
            "session.audio.output.speed",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "tools": [{"type": "function", "name": "x", "strict": True}],
                },
            },
            "unknown_parameter",
            "session.tools[0].strict",
        ),
        ({"type": "response.cancel", "event_id": "x" * 513}, "string_above_max_length", "event_id"),
    ],
)
def test_broken_events_are_refused_with_openai_codes(
    event: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(RealtimeError) as refused:
        check_client_event(event)
    assert (refused.value.code, refused.value.param) == (code, param)
