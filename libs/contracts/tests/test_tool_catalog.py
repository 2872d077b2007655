"""The tool catalog: every Realtime schema is generated, strict, and valid per the official spec."""

from __future__ import annotations

import jsonschema
import pytest
from pydantic import ValidationError

from opencouch.contracts.common import Contract, MemoryMode
from opencouch.contracts.tools import (
    TOOL_CATALOG,
    LoadGuidedExerciseSkillArgs,
    RecallSavedMemoryArgs,
    ToolOwner,
    function_parameters,
    tools_for_mode,
    tools_owned_by,
)
from opencouch.contracts.voice_api import ROUTE_PRIORITY
from opencouch.testing.openai_spec import validate_against

BOTH = {
    "wait_for_user",
    "show_memory_status",
    "load_therapeutic_response_skill",
    "answer_grounded_lookup",
    "lookup_crisis_resources",
    "get_crisis_support_template",
    "list_guided_exercise_skills",
    "start_guided_exercise",
    "load_guided_exercise_skill",
    "record_guided_exercise_progress",
}


def test_incognito_offers_the_ten_shared_tools_and_persistent_all_eighteen() -> None:
    assert {spec.name for spec in tools_for_mode(MemoryMode.INCOGNITO)} == BOTH
    assert len(tools_for_mode(MemoryMode.PERSISTENT)) == 18 == len(TOOL_CATALOG)


@pytest.mark.parametrize("name", sorted(TOOL_CATALOG))
def test_every_tool_schema_is_strict_and_valid_per_the_official_spec(name: str) -> None:
    tool = TOOL_CATALOG[name].realtime_tool().model_dump(mode="json")
    validate_against("RealtimeFunctionTool", tool)
    parameters = tool["parameters"]
    assert parameters["type"] == "object"
    assert parameters["additionalProperties"] is False
    assert set(parameters["required"]) <= set(parameters["properties"])
    jsonschema.Draft202012Validator.check_schema(parameters)
    for prop in parameters["properties"].values():
        assert "title" not in prop
        assert "null" not in str(prop.get("type")), "optional arguments are omitted, not null"


def test_a_tools_definition_is_generated_once_and_then_reused() -> None:
    # Every /session offers the catalog's definitions; pydantic's schema generation was a
    # quarter of the gateway's work for one.
    for spec in TOOL_CATALOG.values():
        tool = spec.realtime_tool()
        assert spec.realtime_tool() is tool
        assert tool.parameters == function_parameters(spec.arguments)


def test_optional_arguments_are_not_required_and_keep_their_constraints() -> None:
    recall = function_parameters(RecallSavedMemoryArgs)
    assert recall["required"] == ["query"]
    assert recall["properties"]["limit"] == {
        "default": 5,
        "description": "At most this many.",
        "maximum": 10,
        "minimum": 1,
        "type": "integer",
    }
    exercise = function_parameters(LoadGuidedExerciseSkillArgs)
    assert exercise["required"] == ["exercise_type", "runtime_action"]
    assert exercise["properties"]["current_step_index"]["type"] == "integer"
    assert "default" not in exercise["properties"]["current_step_index"]


def test_the_generated_schema_accepts_what_the_model_accepts_and_nothing_more() -> None:
    spec = TOOL_CATALOG["recall_saved_memory"]
    validator = jsonschema.Draft202012Validator(function_parameters(spec.arguments))
    for arguments in ({"query": "my sister"}, {"query": "work", "limit": 3}):
        assert validator.is_valid(arguments)
        spec.arguments.model_validate(arguments)
    for arguments in ({}, {"query": "x", "limit": 11}, {"query": "x", "extra": 1}):
        assert not validator.is_valid(arguments)
        with pytest.raises(ValidationError):
            spec.arguments.model_validate(arguments)


def test_memory_tools_are_owned_by_memory_and_subjects_are_versioned() -> None:
    assert TOOL_CATALOG["show_memory_status"].owner is ToolOwner.MEMORY
    assert TOOL_CATALOG["lookup_crisis_resources"].owner is ToolOwner.TOOLS
    assert all(spec.subject == f"opencouch.v1.tools.{name}" for name, spec in TOOL_CATALOG.items())


def test_incognito_is_a_floor() -> None:
    assert MemoryMode.INCOGNITO.floor(MemoryMode.PERSISTENT) is MemoryMode.INCOGNITO
    assert MemoryMode.PERSISTENT.floor(MemoryMode.INCOGNITO) is MemoryMode.INCOGNITO
    assert MemoryMode.PERSISTENT.floor(MemoryMode.PERSISTENT) is MemoryMode.PERSISTENT


def test_every_tool_names_its_output_model_and_a_route() -> None:
    for spec in TOOL_CATALOG.values():
        assert issubclass(spec.output, Contract), spec.name
        assert spec.route in ROUTE_PRIORITY, spec.name
    assert TOOL_CATALOG["lookup_crisis_resources"].route == "crisis"
    assert TOOL_CATALOG["answer_grounded_lookup"].route == "grounded_lookup"
    assert {spec.route for spec in tools_owned_by(ToolOwner.MEMORY)} == {"memory_control"}
