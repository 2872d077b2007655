"""The brain on its own: keyword routes, tool offers, arguments valid for each schema.

The keyword routes are the product's (OpenCouch's scenario file); the emulator itself knows
no tool by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opencouch.realtime_emulator.arguments import fill_arguments
from opencouch.realtime_emulator.brain import Brain
from opencouch.realtime_emulator.offer import Offer
from opencouch.realtime_emulator.planner import Planner, tool_failed
from opencouch.realtime_emulator.scenario import Rule, Scenario, load_scenario

HERE = Path(__file__).parent
PRODUCT_LIKE_TOOLS: list[dict[str, Any]] = json.loads((HERE / "product_tools.json").read_text())
PRODUCT = load_scenario(HERE.parents[2] / "config" / "emulator" / "opencouch-companion.yaml")


def tools_named(*names: str) -> list[dict[str, Any]]:
    """The product tools with these names, in catalog order."""
    return [tool for tool in PRODUCT_LIKE_TOOLS if tool["name"] in names]


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
    plan = Brain(PRODUCT).reply(None, said, offer())
    assert [call.name for call in plan.tool_calls] == [tool]
    jsonschema.validate(plan.tool_calls[0].arguments, schema_of(tool))


def test_breathing_picks_the_breathing_exercise() -> None:
    plan = Brain(PRODUCT).reply(None, "Let's breathe together", offer())
    assert plan.tool_calls[0].arguments == {
        "exercise_type": "grounding_box_breathing",
        "runtime_action": "start",
    }


def test_exercise_list_when_loading_is_not_offered() -> None:
    plan = Brain(PRODUCT).reply(
        None, "breathing please", offer(tools_named("list_guided_exercise_skills"))
    )
    assert [call.name for call in plan.tool_calls] == ["list_guided_exercise_skills"]


def test_no_tool_unless_offered() -> None:
    plan = Brain(PRODUCT).reply(None, "I want to end it all", offer(tools_named("wait_for_user")))
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
    plan = Brain(PRODUCT).reply(None, "I feel lonely since the move.", offer())
    assert plan.tool_calls == []
    assert plan.say is not None
    assert "lonely" in plan.say


def test_wait_for_user_follow_up_only_when_asked() -> None:
    planner = Planner(Brain(PRODUCT))
    planner.typed("item_user", "Wait, give me a second.")
    asked, _ = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    assert [call.name for call in asked.tool_calls] == ["wait_for_user"]
    planner.tool_called("call_1", "wait_for_user", asked)
    planner.tool_output("call_1", '{"status": "ok", "output": {}}')
    plan, _ = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    assert plan.tool_calls == []
    assert plan.say == "Take your time. I'm here whenever you're ready."


def test_an_output_for_a_call_of_a_cancelled_response_is_not_followed_up() -> None:
    """The user spoke over a reply that called a tool; the client answers the call "not run":
    the next response answers what the user said, not the tool's failure."""
    planner = Planner(Brain(PRODUCT))
    planner.typed("item_user", "Wait, give me a second.")
    asked, _ = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    planner.tool_called("call_1", "wait_for_user", asked)
    planner.cut_short(["call_1"])
    interrupted = {"status": "error", "error": {"code": "interrupted", "message": "not run"}}
    planner.tool_output("call_1", json.dumps(interrupted))
    planner.typed("item_again", "I feel lonely.")
    _, trigger = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    assert trigger == "item_again"


def answered_once(scenario: Scenario, said: str, output: str) -> str | None:
    """What the companion says after its call for ``said`` got ``output`` back."""
    planner = Planner(Brain(scenario))
    planner.typed("item_user", said)
    asked, _ = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    [call] = asked.tool_calls
    planner.tool_called("call_1", call.name, asked)
    planner.tool_output("call_1", output)
    plan, _ = planner.next_plan(offer(), out_of_band=False, idle=False, conversation_empty=False)
    assert plan.tool_calls == []
    return plan.say


FAILED = json.dumps({"status": "error", "error": {"code": "tool_timeout", "message": "late"}})


def test_a_failed_tool_gets_the_error_line_not_the_line_that_assumes_it_worked() -> None:
    rules = [
        {"match": ["breathe"], "tools": [{"name": "load_guided_exercise_skill"}],
         "after_tools": ["Let's begin.", "Well done."]},
        {"match": ["wait"], "tools": [{"name": "wait_for_user"}], "after_tools": "Take your time.",
         "after_tool_error": "Sorry, I lost track for a moment."},
    ]  # fmt: skip
    scenario = Scenario.model_validate({"rules": rules, "after_tool_error": "That didn't work."})
    assert answered_once(scenario, "Can we breathe?", FAILED) == "That didn't work."
    assert answered_once(scenario, "Can we breathe?", '{"status": "ok"}') == "Let's begin."
    assert answered_once(scenario, "Wait", FAILED) == "Sorry, I lost track for a moment."
    # Unset, an error output is answered like any other (the generic emulator's default).
    plain = Scenario.model_validate({"rules": rules[:1]})
    assert answered_once(plain, "Can we breathe?", FAILED) == "Let's begin."


def test_a_line_after_tool_outputs_can_say_what_the_output_holds() -> None:
    rules = [
        {"match": ["weather"], "tools": [{"name": "wait_for_user"}],
         "after_tools": "{output.city}: {output.days.0.sky}, {output.high} degrees."},
        {"match": ["list"], "tools": [{"name": "wait_for_user"}],
         "after_tools": "We could try {output.names}."},
    ]  # fmt: skip
    scenario = Scenario.model_validate({"rules": rules, "after_tool_outputs": "Here it is."})
    forecast = {"city": "Paris", "high": 21, "days": [{"sky": "rain"}]}
    assert answered_once(scenario, "weather", json.dumps(forecast)) == "Paris: rain, 21 degrees."
    names = json.dumps({"names": ["box breathing", "grounding"]})
    assert answered_once(scenario, "list", names) == "We could try box breathing, grounding."
    # A field the output lacks (or one that is not text) never reaches the user as a brace.
    assert answered_once(scenario, "weather", json.dumps({"city": "Paris"})) == "Here it is."
    assert answered_once(scenario, "list", json.dumps({"names": [{"a": 1}]})) == "Here it is."
    assert answered_once(scenario, "list", "not json") == "Here it is."


def test_a_line_can_say_one_field_of_each_item_of_a_list() -> None:
    rules = [
        {"match": ["kept"], "tools": [{"name": "wait_for_user"}],
         "after_tools": {"say": "I kept: {output.items.*.text}.", "say_otherwise": "Nothing yet."}},
    ]  # fmt: skip
    scenario = Scenario.model_validate({"rules": rules, "after_tool_outputs": "Here it is."})
    items = {"items": [{"text": "a dog named Rex"}, {"text": "night shifts"}, {"other": 1}]}
    assert answered_once(scenario, "kept", json.dumps(items)) == (
        "I kept: a dog named Rex, night shifts."
    )
    # An empty list, or none, is a missing field: the step's own alternative is said.
    assert answered_once(scenario, "kept", json.dumps({"items": []})) == "Nothing yet."
    assert answered_once(scenario, "kept", json.dumps({"items": "x"})) == "Nothing yet."


@pytest.mark.parametrize(
    ("output", "failed"),
    [
        ('{"error": {"code": "x"}}', True),
        ('{"status": "failed"}', True),
        ('{"status": "refused", "error": {"code": "intent_not_found"}}', True),
        ('{"status": "ok", "error": null}', False),
        ('{"status": "ok", "output": {"error_count": 3}}', False),
        ('["error"]', False),
        ("error", False),  # plain text says nothing machine-readable
        (None, False),
    ],
)
def test_what_counts_as_a_failed_output(output: str | None, failed: bool) -> None:
    assert tool_failed(output) is failed


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


# -- the generic brain: no scenario, only the session's own tools -----------------------------

WEATHER_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "get_moon_phase",
        "description": "Tell the phase of the moon on a given night.",
        "parameters": {
            "type": "object",
            "properties": {
                "night": {"type": "string", "format": "date"},
                "hemisphere": {"type": "string", "enum": ["north", "south"]},
            },
            "required": ["night", "hemisphere"],
        },
    },
    {
        "type": "function",
        "name": "forecastRain",
        "description": "Chance of rain for a city over the next hours.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "hours": {"type": "integer", "maximum": 48}},
            "required": ["city", "hours"],
        },
    },
]


@pytest.mark.parametrize(
    ("said", "tool"),
    [
        ("What phase is the moon in tonight, down south?", "get_moon_phase"),
        ("Will it rain in Lisbon later?", "forecastRain"),
        ("please call forecastRain for me", "forecastRain"),
    ],
)
def test_generic_brain_picks_the_tool_the_words_point_at(said: str, tool: str) -> None:
    plan = Brain(Scenario()).reply(None, said, offer(WEATHER_TOOLS))
    assert [call.name for call in plan.tool_calls] == [tool]
    schema = next(t["parameters"] for t in WEATHER_TOOLS if t["name"] == tool)
    jsonschema.validate(plan.tool_calls[0].arguments, schema)


def test_generic_brain_chooses_the_enum_value_the_user_named() -> None:
    plan = Brain(Scenario()).reply(None, "the moon phase in the south please", offer(WEATHER_TOOLS))
    assert plan.tool_calls[0].arguments["hemisphere"] == "south"


def test_generic_brain_only_talks_when_no_tool_fits() -> None:
    brain = Brain(Scenario())
    plan = brain.reply(None, "Hello there, how are you?", offer(WEATHER_TOOLS))
    assert plan.tool_calls == []
    assert plan.say in Scenario().fallback
    unoffered = brain.reply(None, "What phase is the moon in?", offer([]))
    assert unoffered.tool_calls == []


def test_a_scenario_can_keep_the_generic_brain_from_guessing_tools() -> None:
    brain = Brain(Scenario(guess_tools=False))
    plan = brain.reply(None, "What phase is the moon in tonight?", offer(WEATHER_TOOLS))
    assert plan.tool_calls == []
    assert plan.say in Scenario().fallback
    # Named outright, with tool_choice required, a tool is still called: that is the client's.
    forced = brain.reply(None, "the moon please", offer(WEATHER_TOOLS, "required"))
    assert [call.name for call in forced.tool_calls] == ["get_moon_phase"]


# -- keyword rules --------------------------------------------------------------------------


def rules_scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "rules": [
                {
                    "match": ["storm*", "lightning"],
                    "tools": [{"name": "forecastRain", "arguments": {"city": "Oslo"}}],
                    "after_tools": ["Bring a coat.", {"say": "Anything else?"}],
                },
                {"match": ["storm*"], "say": "No forecast today, but {match} sounds dramatic."},
                {"match": ["full moon"], "tools": [{"name": "get_moon_phase"}]},
            ],
            "fallback": ["Only weather here."],
        }
    )


def test_a_rule_calls_its_tool_with_given_and_made_up_arguments() -> None:
    plan = Brain(rules_scenario()).reply(None, "Are STORMS coming?", offer(WEATHER_TOOLS))
    assert [call.name for call in plan.tool_calls] == ["forecastRain"]
    arguments = plan.tool_calls[0].arguments
    assert arguments["city"] == "Oslo"
    jsonschema.validate(arguments, WEATHER_TOOLS[1]["parameters"])
    assert [step.say for step in plan.after_tools] == ["Bring a coat.", "Anything else?"]


def test_a_rule_whose_tool_is_not_offered_gives_way_to_the_next() -> None:
    moon_only = offer([WEATHER_TOOLS[0]])
    plan = Brain(rules_scenario()).reply(None, "a stormy night", moon_only)
    assert plan.tool_calls == []
    assert plan.say == "No forecast today, but stormy sounds dramatic."


def test_a_rule_can_apply_only_where_tools_it_does_not_call_are_offered() -> None:
    scenario = Scenario.model_validate(
        {
            "guess_tools": False,
            "rules": [
                {"match": ["tomorrow"], "offered": ["forecastRain"], "say": "I can look."},
                {"match": ["tomorrow"], "say": "I can't see ahead."},
            ],
        }
    )
    brain = Brain(scenario)
    both = brain.reply(None, "What about tomorrow?", offer(WEATHER_TOOLS))
    assert (both.say, both.tool_calls) == ("I can look.", [])
    assert brain.reply(None, "tomorrow", offer([WEATHER_TOOLS[0]])).say == "I can't see ahead."


def test_a_follow_up_rule_waits_for_its_tool_to_have_been_called() -> None:
    scenario = Scenario.model_validate(
        {
            "guess_tools": False,
            "rules": [
                {"match": ["storm*"], "tools": [{"name": "forecastRain"}]},
                {
                    "match": ["in lisbon"],
                    "after_calling": "forecastRain",
                    "tools": [{"name": "forecastRain"}],
                },
            ],
        }
    )
    brain = Brain(scenario)
    assert brain.reply(None, "I live in Lisbon", offer(WEATHER_TOOLS)).tool_calls == []
    assert brain.reply(None, "Storms ahead?", offer(WEATHER_TOOLS)).tool_calls
    follow_up = brain.reply(None, "I live in Lisbon", offer(WEATHER_TOOLS))
    assert [call.name for call in follow_up.tool_calls] == ["forecastRain"]


@pytest.mark.parametrize(
    ("said", "matched"),
    [
        ("A Full   moon rises", "full   moon"),
        ("a fuller moon", None),
        ("the moonfull", None),
    ],
)
def test_rule_phrases_match_whole_words(said: str, matched: str | None) -> None:
    full_moon = rules_scenario().rules[2]
    assert full_moon.matched(said) == matched


@pytest.mark.parametrize(
    ("said", "matched"),
    [
        ("Stormy!", "stormy"),
        ("storm", "storm"),
        ("a brainstorm", None),
        ("It\u2019s lightning", "lightning"),
    ],
)
def test_a_star_matches_any_ending(said: str, matched: str | None) -> None:
    assert rules_scenario().rules[0].matched(said) == matched


@pytest.mark.parametrize(
    ("said", "matched"),
    [
        ("I want to die", "i want to die"),
        ("I told her 'I want to die' last night", "i want to die"),  # a quotation's apostrophes
        ("she said 'I want to die'", "i want to die"),
        ("I want to die'd", None),  # an apostrophe that goes on into a word is the word's
        ("don't want", None),  # "t want" is not a word of "don't want"
    ],
)
def test_a_phrase_may_open_and_close_a_quotation_but_not_split_a_contraction(
    said: str, matched: str | None
) -> None:
    rule = Rule(match=["i want to die", "t want"], say="x")
    assert rule.matched(said) == matched


def test_a_rule_does_not_apply_when_its_unless_words_are_there_too() -> None:
    scenario = Scenario.model_validate(
        {
            "guess_tools": False,
            "fallback": ["Go on."],
            "rules": [
                {"match": ["rain*"], "unless": ["no rain", "rain check"], "say": "Umbrella!"},
            ],
        }
    )
    rule = scenario.rules[0]
    assert rule.matched("Will it rain tomorrow?") == "rain"
    assert rule.matched("No rain tomorrow, they say") is None
    assert rule.matched("Can I take a rain check?") is None
    brain = Brain(scenario)
    assert brain.reply(None, "Rainy, isn't it?", offer([])).say == "Umbrella!"
    assert brain.reply(None, "There's no rain at all", offer([])).say == "Go on."


def test_an_unless_phrase_is_checked_like_a_match_phrase() -> None:
    with pytest.raises(ValueError, match="unless"):
        Scenario.model_validate({"rules": [{"match": ["rain"], "unless": [" "], "say": "x"}]})


def test_a_rule_without_phrases_is_refused() -> None:
    with pytest.raises(ValueError, match="match"):
        Scenario.model_validate({"rules": [{"match": [], "say": "never"}]})


def test_a_rule_that_answers_another_applies_only_right_after_it() -> None:
    scenario = Scenario.model_validate(
        {
            "rules": [
                {"name": "offer", "match": ["tired"], "say": "Want a tip?"},
                {"match": ["yes"], "answers": "offer", "say": "Sleep early."},
                {"match": ["yes"], "say": "Yes to what?"},
            ],
            "fallback": ["Go on."],
        }
    )
    brain = Brain(scenario)

    def said(text: str) -> str | None:
        return brain.reply(None, text, offer([])).say

    assert said("yes") == "Yes to what?"  # nothing was offered
    assert said("I'm tired") == "Want a tip?"
    assert said("yes") == "Sleep early."
    assert said("yes") == "Yes to what?"  # answered once
    assert said("I'm tired") == "Want a tip?"
    assert said("hmm") == "Go on."
    assert said("yes") == "Yes to what?"  # another reply came in between
    assert said("I'm tired") == "Want a tip?"
    brain.check_in()  # "are you still there?": a yes now answers that, not the offer
    assert said("yes") == "Yes to what?"


@pytest.mark.parametrize(
    ("output", "confirmed"),
    [
        ({"status": "staged", "staged": {"text": "Ana"}}, True),
        ({"status": "not_found", "staged": None}, False),
        ({"status": "ambiguous", "candidates": []}, False),
    ],
)
def test_a_rule_can_need_a_field_of_the_last_output(
    output: dict[str, Any], confirmed: bool
) -> None:
    scenario = Scenario.model_validate(
        {
            "rules": [
                {"match": ["forget"], "tools": [{"name": "forecastRain"}]},
                {"match": ["yes"], "output_has": ["staged.text"], "say": "Deleted."},
                {"match": ["yes"], "say": "Yes to what?"},
            ],
        }
    )
    planner = Planner(Brain(scenario))
    tools = offer(WEATHER_TOOLS)
    assert planner.brain.reply(None, "yes", tools).say == "Yes to what?"  # no output yet
    planner.typed("item_1", "forget it")
    asked, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    planner.tool_called("call_1", "forecastRain", asked)
    planner.tool_output("call_1", json.dumps(output))
    planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    said = planner.brain.reply(None, "yes", tools).say
    assert said == ("Deleted." if confirmed else "Yes to what?")


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ([{"match": ["yes"], "answers": "offer", "say": "Ok."}], "no rule is named"),
        ([{"name": "a", "match": ["x"], "say": "1"}, {"name": "a", "match": ["y"], "say": "2"}],
         "same name"),
    ],
)  # fmt: skip
def test_answers_must_name_one_rule(rules: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Scenario.model_validate({"rules": rules})


def test_an_unless_phrase_keeps_the_rule_from_its_own_sentence_only() -> None:
    rule = Rule(match=["rain*"], unless=["no rain", "rain check"], say="x")
    assert rule.matched("No rain today, they say; rain tomorrow though.") is None
    assert rule.matched("No rain today. Rain tomorrow, though!") == "rain"
    assert rule.matched("Can I take a rain check?\nIt will rain anyway") == "rain"
    assert rule.matched("Can I take a rain check? There's no rain.") is None
