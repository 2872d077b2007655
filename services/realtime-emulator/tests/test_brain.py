"""The brain on its own: keyword routes, tool offers, arguments valid for each schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opencouch.realtime_emulator.brain import Brain, Offer, fill_arguments
from opencouch.realtime_emulator.scenario import Scenario, load_scenario
from opencouch.realtime_emulator.testing import (
    PRODUCT_LIKE_TOOLS,
    tools_named,
)


def offer(tools: list[dict[str, Any]] = PRODUCT_LIKE_TOOLS, choice: object = "auto") -> Offer:
    return Offer.from_config(tools, choice)


def schema_of(name: str) -> dict[str, Any]:
    return next(tool["parameters"] for tool in PRODUCT_LIKE_TOOLS if tool["name"] == name)


@pytest.mark.parametrize(
    ("said", "tool"),
    [
        ("Honestly I want to end it all.", "lookup_crisis_resources"),
        ("I have been thinking about suicide", "lookup_crisis_resources"),
        ("Wait, give me a second.", "wait_for_user"),
        ("What does your memory keep about me?", "show_memory_status"),
        ("Can we do some breathing?", "load_guided_exercise_skill"),
        ("I need grounding right now", "load_guided_exercise_skill"),
    ],
)
def test_keywords_call_the_offered_tool_with_valid_arguments(said: str, tool: str) -> None:
    plan = Brain(Scenario()).reply(None, said, offer())
    assert [call.name for call in plan.tool_calls] == [tool]
    jsonschema.validate(plan.tool_calls[0].arguments, schema_of(tool))


def test_breathing_picks_the_breathing_exercise() -> None:
    plan = Brain(Scenario()).reply(None, "Let's breathe together", offer())
    assert plan.tool_calls[0].arguments == {
        "exercise_type": "grounding_box_breathing",
        "runtime_action": "start",
    }


def test_exercise_list_when_loading_is_not_offered() -> None:
    plan = Brain(Scenario()).reply(
        None, "breathing please", offer(tools_named("list_guided_exercise_skills"))
    )
    assert [call.name for call in plan.tool_calls] == ["list_guided_exercise_skills"]


def test_no_tool_unless_offered() -> None:
    plan = Brain(Scenario()).reply(
        None, "I want to end it all", offer(tools_named("wait_for_user"))
    )
    assert plan.tool_calls == []
    assert plan.say


def test_tool_choice_none_and_forced() -> None:
    silent = Brain(Scenario()).reply(None, "wait", offer(choice="none"))
    assert silent.tool_calls == []
    forced = Brain(Scenario()).reply(
        None, "hello", offer(choice={"type": "function", "name": "recall_saved_memory"})
    )
    assert [call.name for call in forced.tool_calls] == ["recall_saved_memory"]
    jsonschema.validate(forced.tool_calls[0].arguments, schema_of("recall_saved_memory"))
    required = Brain(Scenario()).reply(
        None, "hello", offer(tools_named("save_response_preference"), "required")
    )
    jsonschema.validate(required.tool_calls[0].arguments, schema_of("save_response_preference"))


def test_otherwise_a_short_reflection() -> None:
    plan = Brain(Scenario()).reply(None, "I feel lonely since the move.", offer())
    assert plan.tool_calls == []
    assert plan.say is not None
    assert "lonely" in plan.say


def test_wait_for_user_follow_up_only_when_asked() -> None:
    brain = Brain(Scenario())
    plan = brain.follow_up(None, ["wait_for_user"], offer())
    assert plan.tool_calls == []
    assert plan.say == "Take your time. I'm here whenever you're ready."


@pytest.mark.parametrize("tool", PRODUCT_LIKE_TOOLS, ids=lambda tool: str(tool["name"]))
def test_arguments_fit_every_product_schema(tool: dict[str, Any]) -> None:
    arguments = fill_arguments(tool["parameters"], {}, "something the user said")
    jsonschema.validate(arguments, tool["parameters"])


def test_arguments_follow_refs_and_nullable_unions() -> None:
    schema = {
        "type": "object",
        "$defs": {"Mode": {"type": "string", "enum": ["incognito", "persistent"]}},
        "properties": {
            "mode": {"$ref": "#/$defs/Mode"},
            "note": {
                "anyOf": [{"type": "null"}, {"type": "string", "minLength": 3, "maxLength": 5}]
            },
            "count": {"type": "integer", "exclusiveMinimum": 2, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["mode", "note", "count", "tags"],
        "additionalProperties": False,
    }
    arguments = fill_arguments(schema, {"mode": "persistent"}, "a much longer sentence")
    jsonschema.validate(arguments, schema)
    assert arguments["mode"] == "persistent"


def test_scenario_file_drives_turns_and_follow_ups(tmp_path: Path) -> None:
    path = tmp_path / "crisis.yaml"
    path.write_text(
        """
name: crisis
turns:
  - user: I don't see the point any more.
    tools:
      - name: lookup_crisis_resources
    after_tools: You matter, and help is close.
  - user: Thank you.
    say: You're welcome.
faults:
  late_transcription: true
""",
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    assert scenario.faults.late_transcription
    brain = Brain(scenario)
    first = brain.take_turn()
    assert brain.spoken_transcript(first) == "I don't see the point any more."
    plan = brain.reply(first, "ignored for scripted turns", offer())
    assert [call.name for call in plan.tool_calls] == ["lookup_crisis_resources"]
    assert plan.after_tools[0].say == "You matter, and help is close."
    second = brain.take_turn()
    assert brain.reply(second, "", offer()).say == "You're welcome."
    assert brain.take_turn() is None
    assert brain.spoken_transcript(None) == scenario.unscripted_transcript


def test_scripted_tool_the_session_lacks_is_skipped_but_spoken_around() -> None:
    scenario = Scenario.model_validate(
        {
            "turns": [
                {"user": "hi", "tools": [{"name": "not_offered"}], "after_tools": "Said anyway."}
            ]
        }
    )
    brain = Brain(scenario)
    plan = brain.reply(brain.take_turn(), "hi", offer())
    assert plan.tool_calls == []
    assert plan.say == "Said anyway."
