"""Limits the contracts enforce at the edge, so nothing too large or unstorable goes further."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opencouch.contracts.common import (
    JSON_MAX_BYTES,
    JSON_MAX_DEPTH,
    TRANSCRIPT_MAX_CHARS,
    TRANSCRIPT_MAX_LINES,
    _checked_size_bound,
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
    # A turn's tool calls are stored with it: their names and errors too.
    for call in (
        {"tool_name": text, "status": "completed"},
        {"tool_name": "x", "status": "failed", "error": text},
    ):
        with pytest.raises(ValidationError):
            TurnRequest.model_validate(turn(tool_calls=[call]))


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00+14:00",  # Postgres keeps it as 1 BC, which Python cannot read back
        "9999-12-31T23:59:59-14:00",
        "1899-12-31T23:59:59Z",
        "2026-12-05T10:00:00",  # no zone: which clock?
    ],
)
def test_a_turn_spoken_at_a_time_no_store_reads_back_is_refused(at: str) -> None:
    with pytest.raises(ValidationError, match="started_at"):
        TurnRequest.model_validate(turn(started_at=at))


@pytest.mark.parametrize(
    "at", ["1970-01-01T00:00:00Z", "2026-12-05T10:00:00.123Z", "2026-12-05T10:00:00-08:00"]
)
def test_any_browser_clock_with_a_zone_is_taken(at: str) -> None:
    assert TurnRequest.model_validate(turn(started_at=at)).started_at is not None


def test_transcripts_are_bounded_in_lines_and_in_total_size() -> None:
    line = {"role": "user", "text": "x" * 4000}
    with pytest.raises(ValidationError):
        ToolsRequest.model_validate(
            {"tool_name": "x", "transcript": [line] * (TRANSCRIPT_MAX_LINES + 1)}
        )
    too_long = TRANSCRIPT_MAX_CHARS // 4000 + 1
    with pytest.raises(ValidationError, match="characters in all"):
        ToolsRequest.model_validate({"tool_name": "x", "transcript": [line] * too_long})


def test_a_turns_transcript_is_bounded_as_a_tool_calls_is() -> None:
    line = {"role": "assistant", "text": "Are you thinking about suicide?"}
    accepted = TurnRequest.model_validate(turn(transcript=[line] * TRANSCRIPT_MAX_LINES))
    assert len(accepted.transcript) == TRANSCRIPT_MAX_LINES
    assert TurnRequest.model_validate(turn()).transcript == []
    with pytest.raises(ValidationError):
        TurnRequest.model_validate(turn(transcript=[line] * (TRANSCRIPT_MAX_LINES + 1)))
    long_line = {"role": "user", "text": "x" * 4000}
    with pytest.raises(ValidationError, match="characters in all"):
        TurnRequest.model_validate(
            turn(transcript=[long_line] * (TRANSCRIPT_MAX_CHARS // 4000 + 1))
        )
    for bad in ({"role": "system", "text": "hi"}, {"role": "user", "text": "nul\x00"}, "hi"):
        with pytest.raises(ValidationError):
            TurnRequest.model_validate(turn(transcript=[bad]))


@pytest.mark.parametrize("wide", ["\U0001f600", "\x01"])
def test_the_largest_valid_incognito_screen_still_fits_one_nats_message(wide: str) -> None:
    from opencouch.contracts.common import UTTERANCE_MAX_CHARS
    from opencouch.contracts.events import CrisisScreen

    lines = [
        {"role": "user", "text": wide * (TRANSCRIPT_MAX_CHARS // TRANSCRIPT_MAX_LINES)}
    ] * TRANSCRIPT_MAX_LINES
    request = TurnRequest.model_validate(
        turn(client_turn_id="c" * 128, user_text=wide * UTTERANCE_MAX_CHARS, transcript=lines)
    )
    screen = CrisisScreen(
        session_id="vs_" + "0" * 32,
        client_turn_id=request.client_turn_id,
        user_text=request.user_text,
        transcript=request.transcript,
    )
    assert len(screen.model_dump_json().encode()) < NATS_MAX_PAYLOAD


@pytest.mark.parametrize("wide", ["\U0001f600", "\x01"])
def test_the_largest_valid_tool_call_still_fits_one_nats_message(wide: str) -> None:
    # Everywhere a client controls text: four-byte characters (the worst case for UTF-8) or
    # control characters (six bytes each in JSON, ``\u0001``).
    lines = [
        {"role": "user", "text": wide * (TRANSCRIPT_MAX_CHARS // TRANSCRIPT_MAX_LINES)}
    ] * TRANSCRIPT_MAX_LINES
    size = len(json.dumps(wide, ensure_ascii=False).encode()) - 2
    arguments = {"q": wide * (JSON_MAX_BYTES // size - 10)}
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


def test_the_largest_valid_turn_still_fits_one_nats_message() -> None:
    """A turn too large for NATS must be a 422 at the edge, never a 503 the browser retries.

    Control characters are the worst case for the JSON on the wire (six bytes each, ``\\u0001``);
    four-byte characters the worst for UTF-8: the event is built from each and must fit.
    """
    from datetime import UTC, datetime

    from opencouch.contracts.common import UTTERANCE_MAX_CHARS
    from opencouch.contracts.events import TurnRecorded

    for char in ("\x01", "\U0001f600"):
        # The largest tool output the contract takes, in this character.
        size = len(json.dumps(char, ensure_ascii=False).encode()) - 2
        output = {"q": char * ((JSON_MAX_BYTES - 16) // size)}
        call = {"tool_name": "t" * 64, "status": "completed", "output": output, "error": char * 500}
        request = TurnRequest.model_validate(
            turn(
                client_turn_id="c" * 128,
                user_text=char * UTTERANCE_MAX_CHARS,
                assistant_text=char * UTTERANCE_MAX_CHARS,
                tool_calls=[call] * 20,
            )
        )
        event = TurnRecorded(
            session_id="vs_" + "0" * 32,
            thread_id="t" * 128,
            user_id="u" * 128,
            client_turn_id=request.client_turn_id,
            user_text=request.user_text,
            assistant_text=request.assistant_text,
            route="therapeutic",
            response_style="voice",
            tool_calls=request.tool_calls,
            outcome=request.outcome,
            recorded_at=datetime.now(UTC),
        )
        assert len(event.model_dump_json().encode()) < NATS_MAX_PAYLOAD


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]))
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_size_bound_is_never_below_the_encoded_size(value: object) -> None:
    """The encoding is skipped whenever the walk's bound is within the limit: it must never be
    below what the encoding would measure (escapes, wide characters and numbers included)."""
    try:
        bound = _checked_size_bound(value)
    except ValueError:  # too deep, or text no store keeps: refused before any size matters
        return
    assert bound >= len(json.dumps(value, ensure_ascii=False).encode())


def test_escaped_control_characters_at_the_limit_are_measured_exactly() -> None:
    # Each \x01 is written as six bytes (\u0001): under the limit in characters, over in bytes.
    arguments = {"q": "\x01" * (JSON_MAX_BYTES // 6 + 1)}
    with pytest.raises(ValidationError, match="larger than"):
        ToolsRequest.model_validate({"tool_name": "x", "arguments": arguments})
    fits = {"q": "\x01" * (JSON_MAX_BYTES // 6 - 4)}
    assert ToolsRequest.model_validate({"tool_name": "x", "arguments": fits}).arguments == fits
