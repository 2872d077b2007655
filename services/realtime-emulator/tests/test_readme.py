"""The README is the outsider's manual: its fidelity tables name every GA event, and its
scenario example is a scenario that does what the README says."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai.types.realtime.realtime_client_event import RealtimeClientEvent
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

from opencouch.realtime_emulator.brain import Brain
from opencouch.realtime_emulator.events import CLIENT_EVENTS
from opencouch.realtime_emulator.offer import Offer
from opencouch.realtime_emulator.planner import Planner
from opencouch.realtime_emulator.scenario import Scenario

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def event_types(union: object) -> set[str]:
    """Every ``type`` tag of one of the SDK's event unions."""
    members = typing.get_args(union)
    if typing.get_origin(union) is typing.Annotated:
        members = typing.get_args(members[0])
    return {
        tag for member in members for tag in typing.get_args(member.model_fields["type"].annotation)
    }


def table(heading: str) -> dict[str, str]:
    """``event -> emulated`` from the table under ``### heading``."""
    section = README.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| (yes|no) \|", section, re.MULTILINE)
    assert len(rows) == len({event for event, _ in rows}), "an event is listed twice"
    return dict(rows)


def test_the_client_event_table_lists_every_ga_client_event() -> None:
    client = table("Client events")
    assert set(client) == event_types(RealtimeClientEvent)
    assert {event for event, emulated in client.items() if emulated == "yes"} == set(CLIENT_EVENTS)


def test_the_server_event_table_lists_every_ga_server_event() -> None:
    server = table("Server events")
    assert set(server) == event_types(RealtimeServerEvent)
    assert len(server) == 46


FORECAST: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "get_forecast",
        "description": "The weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    }
]


@pytest.fixture(scope="module")
def example() -> Scenario:
    block = README.split("## Scenarios", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    return Scenario.model_validate(yaml.safe_load(block))


def test_the_scenario_example_scripts_two_turns(example: Scenario) -> None:
    brain = Brain(example)
    first = brain.take_turn()
    assert brain.spoken_transcript(first) == "Will it rain in Paris tomorrow?"
    plan = brain.reply(first, "", Offer.from_config(FORECAST, "auto"))
    assert plan.say == "Let me check."
    assert [(call.name, call.arguments) for call in plan.tool_calls] == [
        ("get_forecast", {"city": "Paris", "days": 1})
    ]
    second = brain.take_turn()
    assert second is not None
    assert [step.say for step in second.after_tools] == ["Sunny all day.", None]


def test_the_scenario_example_rules_fall_back_when_a_tool_is_missing(example: Scenario) -> None:
    with_tool = Brain(example).reply(
        None, "Do I need an umbrella?", Offer.from_config(FORECAST, "auto")
    )
    assert with_tool.tool_calls[0].name == "get_forecast"
    assert with_tool.tool_calls[0].arguments["days"] == 1
    without = Brain(example).reply(None, "Is it raining?", Offer.from_config([], "auto"))
    assert (
        without.say == "I can't check the forecast right now, but raining is always possible here."
    )


def test_the_scenario_example_promises_only_what_it_can_do(example: Scenario) -> None:
    forecast = Offer.from_config(FORECAST, "auto")
    promised = Brain(example).reply(None, "What about next week?", forecast)
    assert (promised.say, promised.tool_calls) == ("Ask me again on Monday and I'll check.", [])
    unable = Brain(example).reply(None, "What about next week?", Offer.from_config([], "auto"))
    assert unable.say != promised.say


def test_the_scenario_example_answers_its_offer(example: Scenario) -> None:
    brain = Brain(example)
    forecast = Offer.from_config(FORECAST, "auto")
    assert brain.reply(None, "Sure", forecast).tool_calls == []  # nothing was offered yet
    assert brain.reply(None, "Thank you!", forecast).say == (
        "You're welcome! Shall I check tomorrow too?"
    )
    answered = brain.reply(None, "Yes", forecast)
    assert [(c.name, c.arguments["days"]) for c in answered.tool_calls] == [("get_forecast", 2)]


def test_the_scenario_example_follows_on_from_the_last_output(example: Scenario) -> None:
    forecast = Offer.from_config(FORECAST, "auto")
    # Nothing was looked up yet: the follow-on does not apply.
    assert Brain(example).reply(None, "And the day after?", forecast).tool_calls == []
    planner = Planner(Brain(example))
    while planner.brain.take_turn() is not None:  # past the script: the rules answer
        pass
    planner.typed("item_1", "Will it rain?")
    asked, _ = planner.next_plan(forecast, out_of_band=False, idle=False, conversation_empty=False)
    planner.tool_called("call_1", "get_forecast", asked)
    planner.tool_output("call_1", json.dumps({"city": "Rome", "summary": "Rain at noon."}))
    planner.next_plan(forecast, out_of_band=False, idle=False, conversation_empty=False)
    planner.typed("item_2", "And the day after?")
    again, _ = planner.next_plan(forecast, out_of_band=False, idle=False, conversation_empty=False)
    assert [(c.name, c.arguments) for c in again.tool_calls] == [
        ("get_forecast", {"city": "Rome", "days": 2})
    ]
    planner.tool_called("call_2", "get_forecast", again)
    planner.tool_output("call_2", json.dumps({"city": "Rome"}))
    said, _ = planner.next_plan(forecast, out_of_band=False, idle=False, conversation_empty=False)
    assert said.say == "That's all I could find."
