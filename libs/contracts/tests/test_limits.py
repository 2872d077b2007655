"""Limits the contracts enforce at the edge, so nothing too large or unstorable goes further."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from opencouch.contracts.common import (
    JSON_MAX_BYTES,
    JSON_MAX_DEPTH,
    TRANSCRIPT_MAX_CHARS,
    TRANSCRIPT_MAX_LINES,
)
from opencouch.contracts.tools import ToolCallContext, ToolCallRequest
from opencouch.contracts.voice_api import ToolsRequest, TurnRequest

NATS_MAX_PAYLOAD = 1024 * 1024


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def turn(**fields: object) -> dict[str, object]:
    return {"client_turn_id": "t-1", "user_text": "hi", "assistant_text": "hello", **fields}


def test_json_values_deeper_than_the_limit_are_refused_even_when_very_deep() -> None:
    TurnRequest.model_validate(
        turn(
            tool_calls=[{"tool_name": "x", "status": "completed", "output": nested(JSON_MAX_DEPTH)}]
        )
    )
    for depth in (JSON_MAX_DEPTH + 1, 300, 5000):
        with pytest.raises(ValidationError, match="nested deeper"):
            TurnRequest.model_validate(
                turn(
                    tool_calls=[{"tool_name": "x", "status": "completed", "output": nested(depth)}]
                )
            )


def test_json_values_larger_than_the_limit_are_refused() -> None:
    with pytest.raises(ValidationError, match="larger than"):
        ToolsRequest.model_validate({"tool_name": "x", "arguments": {"q": "é" * JSON_MAX_BYTES}})


@pytest.mark.parametrize("text", ["nul\x00byte", "lone \ud800 surrogate"])
def test_text_no_store_can_keep_is_refused_in_utterances_transcripts_and_json(text: str) -> None:
    with pytest.raises(ValidationError):
        TurnRequest.model_validate(turn(user_text=text))
    with pytest.raises(ValidationError):
        ToolsRequest.model_validate(
            {"tool_name": "x", "transcript": [{"role": "user", "text": text}]}
        )
    with pytest.raises(ValidationError):
        ToolsRequest.model_validate({"tool_name": "x", "arguments": {"q": [text]}})
    with pytest.raises(ValidationError):
        ToolsRequest.model_validate({"tool_name": "x", "arguments": {text: 1}})


def test_transcripts_are_bounded_in_lines_and_in_total_size() -> None:
    line = {"role": "user", "text": "x" * 4000}
    with pytest.raises(ValidationError):
        ToolsRequest.model_validate(
            {"tool_name": "x", "transcript": [line] * (TRANSCRIPT_MAX_LINES + 1)}
        )
    too_long = TRANSCRIPT_MAX_CHARS // 4000 + 1
    with pytest.raises(ValidationError, match="characters in all"):
        ToolsRequest.model_validate({"tool_name": "x", "transcript": [line] * too_long})


def test_the_largest_valid_tool_call_still_fits_one_nats_message() -> None:
    # Four-byte characters everywhere a client controls text: the worst case for UTF-8 size.
    wide = "\U0001f600"
    lines = [
        {"role": "user", "text": wide * (TRANSCRIPT_MAX_CHARS // TRANSCRIPT_MAX_LINES)}
    ] * TRANSCRIPT_MAX_LINES
    arguments = {"q": wide * (JSON_MAX_BYTES // 4 - 10)}
    request = ToolsRequest.model_validate(
        {
            "tool_name": "x",
            "arguments": arguments,
            "current_user_message": wide * 8000,
            "transcript": lines,
        }
    )
    call = ToolCallRequest(
        tool_name=request.tool_name,
        arguments=request.arguments,
        context=ToolCallContext(
            session_id="vs_" + "0" * 32,
            thread_id="t",
            memory_mode="persistent",
            current_user_message=request.current_user_message,
            transcript=request.transcript,
        ),
    )
    assert len(call.model_dump_json().encode()) < NATS_MAX_PAYLOAD
    assert len(json.dumps(arguments, ensure_ascii=False).encode()) <= JSON_MAX_BYTES
