"""The schema checks catch what OpenAI would refuse, with or without the spec beside the clone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencouch.testing import openai_spec
from opencouch.testing.openai_spec import (
    SchemaMismatchError,
    errors_against,
    event_problems,
    validate_against,
)

TOOL: dict[str, Any] = {
    "type": "function",
    "name": "wait_for_user",
    "description": "Stay quiet until the user speaks.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
}
USER_TEXT: dict[str, Any] = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hello"}],
    },
}
TEXT_DONE: dict[str, Any] = {
    "type": "response.output_text.done",
    "event_id": "event_1",
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
    "text": "Hello.",
}


@pytest.fixture(params=["with the spec", "without the spec"])
def spec_presence(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Each test runs as CI does (spec beside the clone, if this machine has it) and bare."""
    if request.param == "without the spec":
        monkeypatch.setenv("OPENCOUCH_SHARED_DIR", str(tmp_path))
    openai_spec.official_spec.cache_clear()
    openai_spec._spec_validator.cache_clear()
    yield str(request.param)
    openai_spec.official_spec.cache_clear()
    openai_spec._spec_validator.cache_clear()


def test_a_shared_dir_without_the_spec_means_no_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCOUCH_SHARED_DIR", str(tmp_path))
    assert openai_spec.shared_dir() is None


def test_valid_instances_pass(spec_presence: str) -> None:
    validate_against("RealtimeFunctionTool", TOOL)
    validate_against("RealtimeClientEvent", USER_TEXT)
    validate_against("RealtimeServerEvent", TEXT_DONE)
    validate_against("RealtimeSessionCreateRequestGA", {"type": "realtime", "tools": [TOOL]})


@pytest.mark.parametrize(
    ("schema", "instance", "where"),
    [
        # The API refuses parameters it does not know; so does the check of what a client sends.
        ("RealtimeFunctionTool", {**TOOL, "strict": True}, "strict"),
        ("RealtimeClientEvent", {"type": "response.create", "response": 5}, "response"),
        ("RealtimeClientEvent", {"type": "not.a.thing"}, "(root)"),
        # Inside a list the SDK types as Iterable, which pydantic would otherwise leave unchecked.
        (
            "RealtimeClientEvent",
            {
                **USER_TEXT,
                "item": {**USER_TEXT["item"], "content": [{"type": "input_text", "text": 5}]},
            },
            "item.content.0.text",
        ),
        ("RealtimeServerEvent", {**TEXT_DONE, "output_index": "0"}, "output_index"),
        ("RealtimeServerEvent", {k: v for k, v in TEXT_DONE.items() if k != "text"}, "text"),
        ("RealtimeSessionCreateRequestGA", {"type": "realtime", "voice": "marin"}, "voice"),
        ("RealtimeCreateClientSecretRequest", {"session": {"type": "nope"}}, "session"),
    ],
)
def test_invalid_instances_are_reported_where_they_break(
    spec_presence: str, schema: str, instance: dict[str, Any], where: str
) -> None:
    problems = errors_against(schema, instance)
    sdk = [problem for problem in problems if problem.startswith("openai SDK: ")]
    assert any(where in problem for problem in sdk), problems
    with pytest.raises(SchemaMismatchError, match=schema):
        validate_against(schema, instance)


def test_event_problems_names_each_bad_event_once(spec_presence: str) -> None:
    events: list[dict[str, Any]] = [TEXT_DONE, {**TEXT_DONE, "text": None}, {"type": "made.up"}]
    problems = event_problems("RealtimeServerEvent", events)
    assert [problem.split(":")[0] for problem in problems] == [
        "response.output_text.done",
        "made.up",
    ]


def test_an_unmapped_schema_name_is_an_error() -> None:
    with pytest.raises(KeyError, match="RealtimeNoSuchThing"):
        errors_against("RealtimeNoSuchThing", {})
