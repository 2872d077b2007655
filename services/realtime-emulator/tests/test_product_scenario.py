"""The product's side of the emulator: OpenCouch's scenario file against OpenCouch's real tool
catalog, the stack's wiring of that file, and an emulator source that knows none of it.

This is the one emulator test module that reads the product's contracts; the emulator itself
never imports them.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, get_args

import httpx
import jsonschema
import pytest

from opencouch.contracts.care import (
    Citation,
    CrisisResourcesOutput,
    ExerciseId,
    ExerciseListOutput,
    ExerciseProgressOutput,
    ExerciseStep,
    ExerciseStepOutput,
    GroundedLookupOutput,
)
from opencouch.contracts.common import Contract, ErrorCode, MemoryMode
from opencouch.contracts.memory import (
    DeletionOutput,
    MemoryItem,
    MemorySource,
    MemoryStatusOutput,
    SavedMemoryOutput,
)
from opencouch.contracts.tools import CRISIS_FALLBACK, TOOL_CATALOG
from opencouch.realtime_emulator.arguments import fill_arguments
from opencouch.realtime_emulator.brain import Brain, Plan
from opencouch.realtime_emulator.offer import Offer
from opencouch.realtime_emulator.planner import Planner
from opencouch.realtime_emulator.scenario import ToolCallStep, load_scenario
from opencouch.realtime_emulator.testing import free_port
from opencouch.runtime.tools import tool_error
from opencouch.testing.processes import emulator_scenario, http_ok, start_service
from opencouch.tools.classifier import classify, is_safety_check
from opencouch.tools.testing import crisis_evaluation_set

SOURCE = Path(__file__).parents[1] / "src"
PRODUCT_FILE = emulator_scenario()
CATALOG_TOOLS: list[dict[str, Any]] = [
    spec.realtime_tool().model_dump(mode="json") for spec in TOOL_CATALOG.values()
]


INCOGNITO_TOOLS = [
    spec.realtime_tool().model_dump(mode="json")
    for spec in TOOL_CATALOG.values()
    if spec.offered_in(MemoryMode.INCOGNITO)
]


def first_reply(said: str, tools: list[dict[str, Any]] = CATALOG_TOOLS) -> Plan:
    """What the product companion plans for ``said`` as the first thing said to it."""
    return Brain(load_scenario(PRODUCT_FILE)).reply(None, said, Offer.from_config(tools, "auto"))


def catalog_schema(name: str) -> dict[str, Any]:
    return TOOL_CATALOG[name].realtime_tool().parameters


def test_the_product_file_names_only_catalog_tools_with_valid_arguments() -> None:
    scenario = load_scenario(PRODUCT_FILE)
    assert scenario.name == "opencouch-companion"
    named = [call for rule in scenario.rules for call in rule.tools]
    assert named, "the product file should route words to tools"
    # Tools a rule needs offered, or whose output it follows on from, are catalog tools too.
    for rule in scenario.rules:
        for name in (*rule.offered, rule.after_output, rule.after_calling):
            assert name is None or name in TOOL_CATALOG, name
    for call in named:
        assert call.name in TOOL_CATALOG, call.name
        # Arguments filled from a tool output (``{output.a}``) are checked by the walk below.
        literal = {
            key: value
            for key, value in call.arguments.items()
            if not (isinstance(value, str) and value.startswith("{output."))
        }
        arguments = fill_arguments(catalog_schema(call.name), literal, "user words")
        jsonschema.validate(arguments, catalog_schema(call.name))
        # Literal arguments must survive the schema, not be replaced by made-up values.
        assert {key: arguments[key] for key in literal} == literal


@pytest.mark.parametrize(
    ("said", "tool"),
    [
        ("I don't want to live any more, I want to die", "lookup_crisis_resources"),
        (
            "I don\u2019t want to be alive anymore.",
            "lookup_crisis_resources",
        ),  # a phone's apostrophe
        ("Sometimes I wish I was dead", "lookup_crisis_resources"),
        ("I wrote my goodbye letters", "lookup_crisis_resources"),
        ("I feel like nobody would care if I was gone.", "lookup_crisis_resources"),
        ("I've thought about jumping in front of a train", "lookup_crisis_resources"),
        ("I'm on the roof and I want to jump", "lookup_crisis_resources"),
        # An idiom, a song or an accident in one sentence does not hide what the next says.
        (
            "I'm banging my head against the wall with this bug. Honestly, I want to die.",
            "lookup_crisis_resources",
        ),
        (
            "That song is about suicide. I've been thinking about suicide too.",
            "lookup_crisis_resources",
        ),
        ("Hold on a second", "wait_for_user"),
        ("Please remember that I prefer short answers.", "save_response_preference"),
        ("Do you remember what I told you?", "show_memory_status"),
        ("Could we breathe together?", "load_guided_exercise_skill"),
        ("Can we do a breathing exercise?", "load_guided_exercise_skill"),
        ("I need some grounding", "load_guided_exercise_skill"),
        ("Please help me calm down", "load_guided_exercise_skill"),
    ],
)
def test_the_product_rules_work_with_the_real_catalog(said: str, tool: str) -> None:
    plan = first_reply(said)
    assert [call.name for call in plan.tool_calls] == [tool]
    jsonschema.validate(plan.tool_calls[0].arguments, catalog_schema(tool))
    assert plan.after_tools, "every product rule says something once its tool has answered"


@pytest.mark.parametrize(
    "said",
    [
        "I've been feeling anxious about work lately.",
        "I'm panicking",
        "I can't breathe, my heart is racing",
        "My anxiety is through the roof",
        "My breathing is really fast",
    ],
)
def test_a_feeling_alone_never_starts_an_exercise(said: str) -> None:
    # Exercises only on request (the gateway's instructions say so); "anxious" used to start
    # the 5-4-3-2-1 exercise, and "I can't breathe" box breathing, unasked.
    plan = first_reply(said)
    assert plan.tool_calls == []
    assert plan.say
    assert "exercise" in plan.say or plan.say in load_scenario(PRODUCT_FILE).fallback


def test_the_offer_is_answered_by_naming_an_exercise() -> None:
    brain = Brain(load_scenario(PRODUCT_FILE))
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    offered = brain.reply(None, "I'm so anxious I think I'm panicking", tools)
    assert offered.tool_calls == []
    assert "breathing exercise or a grounding exercise" in (offered.say or "")
    for answer, exercise in (
        ("A breathing exercise, please.", "grounding_box_breathing"),
        ("Let's try the grounding exercise.", "grounding_5_4_3_2_1"),
    ):
        plan = brain.reply(None, answer, tools)
        assert [call.arguments.get("exercise_type") for call in plan.tool_calls] == [exercise]


def test_the_offer_can_be_taken_or_declined_in_a_word() -> None:
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    planner.typed("item_1", "I'm panicking")
    offered, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    assert "exercise" in (offered.say or "")
    said = said_after("Yes please", FIRST_BREATH, planner)
    assert said == "Let's start with some slow breathing. Breathe in."

    brain = Brain(load_scenario(PRODUCT_FILE))
    brain.reply(None, "My anxiety is bad today", tools)
    declined = brain.reply(None, "No, not really.", tools)
    assert declined.tool_calls == []
    assert "we don't have to" in (declined.say or "")
    # Out of the blue, or once something else was said in between, a yes starts nothing.
    assert brain.reply(None, "Yes", tools).tool_calls == []
    brain.reply(None, "I'm so anxious", tools)
    brain.reply(None, "My boss keeps moving deadlines", tools)
    assert brain.reply(None, "okay", tools).tool_calls == []


@pytest.mark.parametrize(
    ("answer", "looked_up"),
    [
        ("Yes.", True),
        ("Sometimes, yeah", True),
        ("I don't know", True),
        ("I'm not sure.", True),
        ("No, not really.", False),
        ("No.", False),
        ("I'm not thinking about that, no.", False),
        ("I am okay, just tired.", False),
    ],
)
def test_hopelessness_gets_one_safety_question_and_its_answer_decides(
    answer: str, looked_up: bool
) -> None:
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    brain = Brain(load_scenario(PRODUCT_FILE))
    asked = brain.reply(None, "I don't really see the point in anything anymore.", tools)
    assert asked.tool_calls == []  # no hotline for an ambiguous line alone
    # A question the crisis screening knows as a safety check, so a yes to it is screened as one.
    assert is_safety_check(asked.say or "")
    answered = brain.reply(None, answer, tools)
    if looked_up:
        assert [call.name for call in answered.tool_calls] == ["lookup_crisis_resources"]
        assert answered.after_tools
    else:
        assert answered.tool_calls == []
        assert (answered.say or "").startswith("Thank you for telling me.")


@pytest.mark.parametrize(
    "said",
    ["I'm not sure I can keep going.", "I don't know how to keep going", "It all feels hopeless."],
)
def test_each_way_of_saying_it_is_met_with_the_safety_question(said: str) -> None:
    plan = first_reply(said)
    assert plan.tool_calls == []
    assert is_safety_check(plan.say or "")
    # ...and the crisis screening reads the line itself as distress, not as nothing.
    assert classify(said).level == 1


# The crisis classifier's own labelled set (services/tools: data/crisis_eval.jsonl) read as the
# first thing said to the offline companion. Its categories whose level depends on what was
# asked just before (a yes to the safety question) are met in the tests above.
_SAID_AFTER_A_QUESTION: Final = frozenset({"affirmed_after_check", "unclear_after_check"})
# Lines the companion's phrases do not tell apart from their level: they need understanding
# that keyword rules do not have, each said why. Kept short: a line added here is a person the
# offline companion fails.
_UNDERSTOOD_ONLY_BY_A_MODEL: Final = {
    # level 2, no crisis lines
    "My brother wants to kill himself and I feel the same way.": "the same way as whom",
    # level 0, crisis lines offered or the safety question asked
    "My best friend is suicidal and won't see a doctor.": "someone else's crisis",
    "My brother thought about jumping off a bridge once.": "someone else's, once",
    "My sister wrote 'I want to disappear' as the caption of her holiday photo.": "her words",
    'My son said "I\'ll kill myself if I fail" but he was joking about his exam.': "a joke",
}


def _crisis_eval() -> list[tuple[str, int]]:
    return [
        (row["text"], row["level"])
        for row in crisis_evaluation_set()
        if row.get("category") not in _SAID_AFTER_A_QUESTION
    ]


def test_the_offline_companion_meets_the_crisis_eval_set_at_its_levels() -> None:
    """Level 2 or 3: the verified crisis lines (the lookup). Level 1: the one safety question,
    no lines. Level 0: neither. What the companion does instead, line by line, if not."""
    missed = []
    for said, level in _crisis_eval():
        plan = first_reply(said)
        lines = [call.name for call in plan.tool_calls] == ["lookup_crisis_resources"]
        asked = not plan.tool_calls and is_safety_check(plan.say or "")
        met = lines if level >= 2 else asked if level == 1 else not lines and not asked
        excused = said in _UNDERSTOOD_ONLY_BY_A_MODEL
        if met and excused:
            missed.append(f"level {level}: {said!r} is met now: no longer an exception")
        elif not met and not excused:
            missed.append(f"level {level}: {said!r} -> {plan.say!r} {plan.tool_calls}")
    assert not missed, "\n".join(missed)
    assert all(said in dict(_crisis_eval()) for said in _UNDERSTOOD_ONLY_BY_A_MODEL)


@pytest.mark.parametrize(
    "said",
    [
        "I cut myself shaving this morning",
        "I hurt myself at the gym",
        "We laughed until it hurts",
        "I'd love to sleep forever on a beach",
        "I'm thinking about jumping into a new career",
        "I'm cutting back on coffee",
        "I hit my head against the cupboard",
        "Is it better without me there?",
    ],
)
def test_everyday_words_near_the_crisis_words_get_no_crisis_lines(said: str) -> None:
    """Lines outside the labelled set that share words with its crisis lines: an accident, a
    figure of speech, a plan for a career. The classifier reads each as level 0 too."""
    plan = first_reply(said)
    assert "lookup_crisis_resources" not in [call.name for call in plan.tool_calls]
    assert classify(said).level == 0


def _voice_exercises() -> list[tuple[str, str]]:
    """(id, display name) of every exercise the tools service offers for voice."""
    folder = resources.files("opencouch.tools") / "data/exercises"
    found = []
    for exercise in folder.iterdir():
        if exercise.name.endswith(".toml"):
            data = tomllib.loads(exercise.read_text())
            if "voice" in data["channels"]:
                found.append((exercise.name.removesuffix(".toml"), data["display_name"]))
    return sorted(found)


_summary = {
    "category": "grounding",
    "tags": [],
    "duration_seconds": 60,
    "intensity": "low",
    "approaches": [],
    "channels": ["voice"],
    "voice_fit": "good",
    "interaction_pattern": "steps",
    "cognitive_load": "low",
    "step_count": 4,
}


def test_asked_which_exercises_there_are_it_names_them() -> None:
    listed = ExerciseListOutput.model_validate(
        {
            "exercises": [
                {**_summary, "id": "grounding_box_breathing", "display_name": "Box breathing"},
                {
                    **_summary,
                    "id": "self_compassion_break",
                    "display_name": "Self-compassion break",
                },
            ],
            "guidance": "Offer one or two.",
        }
    )
    call, said = called_and_said("What exercises do you have?", listed)
    assert call.name == "list_guided_exercise_skills"
    assert said == "We could try Box breathing, Self-compassion break. Which one sounds good?"


@pytest.mark.parametrize(("exercise_id", "name"), _voice_exercises())
def test_every_voice_exercise_starts_when_asked_for_by_its_name(
    exercise_id: str, name: str
) -> None:
    plan = first_reply(f"Let's try {name.lower()}.")
    assert [(c.name, c.arguments["exercise_type"]) for c in plan.tool_calls] == [
        ("load_guided_exercise_skill", exercise_id)
    ]


@pytest.mark.parametrize(
    ("said", "sorry"),
    [
        ("My dog died last week.", True),
        ("My grandmother passed away in March.", True),
        ("I've been grieving for months.", True),
        ("My phone died on the way home.", False),
    ],
)
def test_a_loss_is_acknowledged_first(said: str, sorry: bool) -> None:
    plan = first_reply(said)
    assert (plan.say or "").startswith("I'm so sorry.") is sorry


def test_words_no_rule_knows_get_a_reply_and_no_guessed_tool() -> None:
    # "support" shares a word with get_crisis_support_template: it was called for this.
    plan = first_reply("My sister Anna has been a great support to me.")
    assert plan.tool_calls == []
    assert plan.say in load_scenario(PRODUCT_FILE).fallback


def test_where_the_user_lives_brings_a_second_lookup_only_after_the_first() -> None:
    brain = Brain(load_scenario(PRODUCT_FILE))
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    # Said in passing, where it is small talk: no crisis lines.
    assert brain.reply(None, "I live in Toronto with my partner.", tools).tool_calls == []
    first = brain.reply(None, "I want to kill myself tonight.", tools)
    assert [call.name for call in first.tool_calls] == ["lookup_crisis_resources"]
    assert "which country or city" in (first.after_tools[0].say or "")
    again = brain.reply(None, "I live in Toronto.", tools)
    assert [call.name for call in again.tool_calls] == ["lookup_crisis_resources"]
    jsonschema.validate(again.tool_calls[0].arguments, catalog_schema("lookup_crisis_resources"))


def _lookup(location: str | None) -> CrisisResourcesOutput:
    return CrisisResourcesOutput(
        status="found" if location else "no_location",
        location_status="provided" if location else "not_provided",
        location=location,
        guidance="Name only these lines.",
    )


@pytest.mark.parametrize(
    "said",
    ["Can you give me a hotline number?", "Who can I call?", "I need someone to talk to."],
)
def test_asked_for_a_line_to_call_it_looks_one_up_before_naming_any(said: str) -> None:
    call, found = called_and_said(said, _lookup("Canada"))
    assert call.name == "lookup_crisis_resources"
    assert (found or "").startswith("The lines on your screen are the ones I can offer for Canada")
    _, unknown = called_and_said(said, _lookup(None))
    assert "Which country or city are you in?" in (unknown or "")
    assert not re.search(r"\d{3}", unknown or "")  # no number of its own


def test_asked_to_forget_where_they_live_after_a_lookup_it_forgets_not_looks() -> None:
    brain = Brain(load_scenario(PRODUCT_FILE))
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    assert brain.reply(None, "I want to end my life.", tools).tool_calls
    plan = brain.reply(None, "Please forget that I live in Toronto.", tools)
    assert [call.name for call in plan.tool_calls] == ["prepare_memory_deletion_by_query"]


@pytest.mark.parametrize(
    "said",
    [
        "Is it normal to feel numb after a loss?",
        "What does the research say about sleep and anxiety?",
        "How do I find a therapist?",
        "What can I do about insomnia?",
    ],
)
def test_a_factual_question_is_answered_only_from_the_verified_library(said: str) -> None:
    def cited(text: str, publisher: str) -> Citation:
        return Citation(
            passage_id="p", title="t", publisher=publisher, url="https://x.test", text=text
        )

    answered = GroundedLookupOutput(
        status="answered",
        answer="Numbness is a common early reaction to loss. Grief has no timetable.",
        citations=[
            cited("Numbness is a common early reaction to loss.", "NHS"),
            cited("Grief has no timetable.", "Mind"),
        ],
        guidance="Answer from these passages only.",
    )
    call, said_back = called_and_said(said, answered)
    assert call.name == "answer_grounded_lookup"
    assert said_back == (
        "Numbness is a common early reaction to loss. That's general information from NHS, not a "
        "diagnosis."
    )
    none = GroundedLookupOutput(status="no_verified_answer", guidance="Do not guess.")
    assert (said_after(said, none) or "").startswith("I can't give you a checked answer to that")


def test_asked_where_they_are_the_natural_answer_looks_again() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    said_after("I want to kill myself tonight.", _lookup(None), planner)
    call, said = called_and_said("I'm in Toronto.", _lookup("Toronto, Canada"), planner)
    assert call.name == "lookup_crisis_resources"
    assert said is not None
    assert "for Toronto, Canada." in said
    # Words that name no place the lookup knows: it asks again, with the safety step.
    call, said = called_and_said("I'm in so much pain.", _lookup(None), planner)
    assert call.name == "lookup_crisis_resources"
    assert said is not None
    assert "emergency number" in said
    assert "Which country or city are you in?" in said


# What the tools service returns when box breathing starts (its first step shortened).
FIRST_BREATH = ExerciseStepOutput(
    status="ok",
    exercise_id="grounding_box_breathing",
    display_name="Box breathing",
    runtime_action="start",
    step=ExerciseStep(
        step_id="inhale", index=0, instruction="Breathe in.", completion_mode="confirmation"
    ),
    step_count=4,
    guidance="Lead one step at a time.",
)


def said_after(said: str, output: Contract, planner: Planner | None = None) -> str | None:
    """What the product companion says once its call for ``said`` returned ``output``."""
    return called_and_said(said, output, planner)[1]


def called_and_said(
    said: str, output: Contract, planner: Planner | None = None
) -> tuple[ToolCallStep, str | None]:
    """The one call the product companion makes for ``said``, and what it says once that call
    returned ``output``."""
    planner = planner or Planner(Brain(load_scenario(PRODUCT_FILE)))
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    planner.typed(f"item_{said}", said)
    asked, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    [call] = asked.tool_calls
    planner.tool_called(f"call_{said}", call.name, asked)
    planner.tool_output(f"call_{said}", output.model_dump_json(exclude_none=True))
    plan, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    return call, plan.say


def _progress(step_id: str | None, instruction: str | None, action: str) -> ExerciseProgressOutput:
    return ExerciseProgressOutput(
        status="recorded",
        runtime_action=action,
        exercise_id="grounding_box_breathing",
        step_id=step_id,
        next_step=None
        if instruction is None
        else ExerciseStep(
            step_id=step_id or "", index=1, instruction=instruction, completion_mode="confirmation"
        ),
        guidance="Lead the next step.",
    )


def test_an_exercise_is_led_step_by_step_with_the_ids_of_the_step_answered() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    assert said_after("Could we breathe together?", FIRST_BREATH, planner) == (
        "Let's begin. Breathe in."
    )
    call, said = called_and_said("Okay, done.", _progress("hold", "Hold it.", "advance"), planner)
    assert (call.name, call.arguments["expected_step_id"]) == (
        "record_guided_exercise_progress",
        "inhale",  # the step the exercise's start led
    )
    assert call.arguments["expected_skill_id"] == "grounding_box_breathing"
    assert call.arguments["outcome"] == "complete"
    assert said == "Hold it."
    call, said = called_and_said("Done", _progress("exhale", None, "complete"), planner)
    assert call.arguments["expected_step_id"] == "hold"  # the step the last progress led
    assert said is not None
    assert said.startswith("That was the last step.")
    # Finished: a further "done" is not taken for an exercise step.
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    assert Brain(load_scenario(PRODUCT_FILE)).reply(None, "done", tools).tool_calls == []
    planner.typed("item_after", "done")
    after, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    assert after.tool_calls == []


def test_an_exercise_can_be_stopped_at_any_step() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    said_after("Could we breathe together?", FIRST_BREATH, planner)
    stopped = _progress(None, None, "cancel")
    call, said = called_and_said("I want to stop.", stopped, planner)
    assert (call.arguments["outcome"], call.arguments["expected_step_id"]) == ("exit", "inhale")
    assert said == "Of course, we can stop here. What would help you most right now?"


@pytest.mark.parametrize("after_a_step", [False, True])
def test_a_goodbye_in_the_middle_of_an_exercise_records_it_as_left(after_a_step: bool) -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    said_after("Could we breathe together?", FIRST_BREATH, planner)
    step = "inhale"
    if after_a_step:
        called_and_said("Done.", _progress("hold", "Hold it.", "advance"), planner)
        step = "hold"
    call, said = called_and_said("Okay, thanks, bye.", _progress(None, None, "cancel"), planner)
    assert call.name == "record_guided_exercise_progress"
    assert (call.arguments["outcome"], call.arguments["expected_step_id"]) == ("exit", step)
    assert (said or "").startswith("Thank you for talking with me today.")


def test_a_goodbye_after_an_exercise_ended_is_only_a_goodbye() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    said_after("Could we breathe together?", FIRST_BREATH, planner)
    called_and_said("Done", _progress("exhale", None, "complete"), planner)
    tools = Offer.from_config(CATALOG_TOOLS, "auto")
    planner.typed("item_bye", "Thanks, bye.")
    plan, _ = planner.next_plan(tools, out_of_band=False, idle=False, conversation_empty=False)
    assert plan.tool_calls == []
    assert (plan.say or "").startswith("Thank you for talking with me today.")


def test_a_failed_crisis_lookup_gets_the_safety_step_and_a_question_never_a_number() -> None:
    failed = tool_error(ErrorCode.TOOL_TIMEOUT, "too slow", CRISIS_FALLBACK)
    said = said_after("I want to end my life.", failed) or ""
    assert "couldn't look up support lines" in said
    assert "emergency services" in said  # the safety step ...
    assert said.endswith("?")  # ... then where they are
    assert not re.search(r"\d", said)  # no number of its own (the guidance forbids it)


def test_a_failed_second_lookup_for_where_they_live_still_gives_the_safety_step() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    failed = tool_error(ErrorCode.TOOL_TIMEOUT, "too slow", CRISIS_FALLBACK)
    said_after("I want to end my life.", failed, planner)  # a follow-up needs a first lookup
    said = said_after("I live in Toronto.", failed, planner) or ""
    assert "couldn't look up lines for where you are" in said
    assert "emergency services" in said
    assert not re.search(r"\d", said)


def test_any_other_failed_tool_is_owned_up_to() -> None:
    unavailable = tool_error(ErrorCode.TOOL_UNAVAILABLE, "down")
    said = said_after("Could we breathe together?", unavailable)
    assert said == load_scenario(PRODUCT_FILE).after_tool_error
    assert "couldn't" in (said or "")


def test_the_companion_says_what_memory_and_exercise_tools_returned() -> None:
    status = MemoryStatusOutput(
        memory_mode=MemoryMode.INCOGNITO,
        memory_enabled=False,
        proactive_recall_enabled=False,
        kept=[],
        summary="Memory is off here.",
    )
    assert said_after("Do you remember me?", status) == "Memory is off here."
    assert said_after("Could we breathe together?", FIRST_BREATH) == "Let's begin. Breathe in."


def test_asked_what_it_remembers_it_says_what_the_memory_service_keeps() -> None:
    def item(kind: Literal["fact", "rule"], text: str) -> MemoryItem:
        return MemoryItem(
            kind=kind, index=1, text=text, source=MemorySource(recorded_at=datetime.now(UTC))
        )

    # A preference alone is something kept: the companion says the owner's summary of it all.
    saved = SavedMemoryOutput(
        facts=[item("fact", "I have a dog named Rex.")],
        sessions=[],
        rules=[item("rule", "Keep answers short.")],
        total_facts=1,
        total_sessions=0,
        total_rules=1,
        proactive_recall_enabled=False,
        summary="Saved about you: I have a dog named Rex. Your preferences: Keep answers short.",
        guidance="Read them out as they are.",
    )
    call, said = called_and_said("What do you remember about me?", saved)
    assert call.name == "show_saved_memory"
    assert said == saved.summary
    plan = first_reply("What do you remember about me?", INCOGNITO_TOOLS)
    assert [c.name for c in plan.tool_calls] == ["show_memory_status"]


@pytest.mark.parametrize(
    "said", ["Delete everything you know about me.", "Please forget all of it", "wipe my data"]
)
def test_asked_to_erase_everything_it_points_to_the_pages_erase(said: str) -> None:
    plan = first_reply(said)
    assert plan.tool_calls == []
    assert '"Erase everything kept about me"' in (plan.say or "")
    # The button it names is the page's.
    page = Path(__file__).parents[2] / "web/src/opencouch/web/pages/voice.html"
    assert ">Erase everything kept about me…</button>" in page.read_text(encoding="utf-8")


def test_a_stated_preference_is_kept_in_the_users_words_and_incognito_hears_about_memory() -> None:
    said = "Please remember that I prefer short answers."
    brain = Brain(load_scenario(PRODUCT_FILE))
    plan = brain.reply(None, said, Offer.from_config(CATALOG_TOOLS, "auto"))
    [call] = plan.tool_calls
    # The quote is the user's own words, so the owner's intent check can find it there.
    assert call.arguments["user_quote"] == said
    plan = brain.reply(None, said, Offer.from_config(INCOGNITO_TOOLS, "auto"))
    assert [c.name for c in plan.tool_calls] == ["show_memory_status"]


def _deletion_staged(text: str | None) -> DeletionOutput:
    if text is None:
        return DeletionOutput(status="not_found", guidance="Nothing saved matches.")
    item = MemoryItem(
        kind="fact", index=1, text=text, source=MemorySource(recorded_at=datetime.now(UTC))
    )
    return DeletionOutput(status="staged", staged=item, guidance="Read it back and ask.")


@pytest.mark.parametrize(
    ("answer", "then"),
    [("Yes, delete it.", "confirm_memory_deletion"), ("No, keep it.", "cancel_memory_deletion")],
)
def test_asked_to_forget_one_thing_it_reads_it_back_and_deletes_only_on_a_yes(
    answer: str, then: str
) -> None:
    said = "Please forget that my sister is called Ana."
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    call, asked = called_and_said(said, _deletion_staged("My sister is called Ana."), planner)
    assert call.name == "prepare_memory_deletion_by_query"
    assert call.arguments["user_quote"] == said  # the owner's intent check finds it there
    assert asked == (
        'Just to be sure: should I delete "My sister is called Ana."? Say yes to delete it, or no '
        "to keep it."
    )
    answered, _ = called_and_said(answer, DeletionOutput(status="deleted", guidance="."), planner)
    assert answered.name == then


def test_with_nothing_staged_a_yes_deletes_nothing() -> None:
    planner = Planner(Brain(load_scenario(PRODUCT_FILE)))
    _, asked = called_and_said("Can you forget my old job?", _deletion_staged(None), planner)
    assert (asked or "").startswith("I'm not sure which saved item you mean.")
    planner.typed("item_ok", "Okay.")
    plan, _ = planner.next_plan(
        Offer.from_config(CATALOG_TOOLS, "auto"),
        out_of_band=False,
        idle=False,
        conversation_empty=False,
    )
    assert plan.tool_calls == []


@pytest.mark.parametrize(
    "said", ["I can't forget that night.", "I just want to forget about my ex", "Forget it."]
)
def test_forgetting_as_a_feeling_is_not_a_deletion(said: str) -> None:
    plan = first_reply(said)
    assert "prepare_memory_deletion_by_query" not in [call.name for call in plan.tool_calls]


@pytest.mark.parametrize(
    "said",
    [
        "Can you remember that my sister's name is Ana?",
        "Please remember I work nights.",
        "Don't forget that I'm a nurse.",
    ],
)
def test_asked_to_keep_something_in_mind_it_promises_only_what_memory_does(said: str) -> None:
    persistent = first_reply(said)
    assert persistent.tool_calls == []
    assert (persistent.say or "").startswith("I'll keep that in mind for this conversation.")
    assert "if you choose to keep it" in (persistent.say or "")
    # Incognito keeps nothing: it says what the memory status says, never a promise.
    incognito = first_reply(said, INCOGNITO_TOOLS)
    assert [call.name for call in incognito.tool_calls] == ["show_memory_status"]
    assert "keep that in mind" not in (incognito.say or "")


@pytest.mark.parametrize(
    "said",
    [
        "Is memory on?",
        "Do you remember me?",
        "Are you saving this?",
        "Can you tell me about my memory settings?",
        "What do you remember about me?",
        "Please remember that I like tea.",
        "Don't forget that I'm a nurse.",
    ],
)
def test_in_incognito_a_question_or_request_about_memory_gets_the_status(said: str) -> None:
    plan = first_reply(said, INCOGNITO_TOOLS)
    assert [call.name for call in plan.tool_calls] == ["show_memory_status"]


@pytest.mark.parametrize(
    "said",
    [
        "I remember when we used to go fishing.",
        "I have so many memories of my dad.",
        "My memory has been terrible since the accident.",
        "My memory is so bad lately.",
    ],
)
def test_remembering_in_conversation_is_not_a_question_about_memory(said: str) -> None:
    plan = first_reply(said)
    assert plan.tool_calls == []


def test_asked_whether_it_remembers_something_it_looks_not_promises() -> None:
    plan = first_reply("Can you remember what I told you last time?")
    assert [call.name for call in plan.tool_calls] == ["show_memory_status"]


@pytest.mark.parametrize(
    ("said", "reply"),
    [
        ("Bye for now.", "Thank you for talking with me today."),
        ("Okay, see you tomorrow", "Thank you for talking with me today."),
        ("Thanks, that helps a bit.", "You're welcome."),
        ("Thank you so much", "You're welcome."),
        ("Hello?", "Hi, I'm here with you."),
        ("Good night.", "Thank you for talking with me today."),
        ("Hi, I've been so stressed", "It sounds like you're feeling stressed."),
        # Not a goodbye, and not thanks: a feeling, and a night's sleep.
        ("Thanks, but I'm still worried", "It sounds like you're feeling worried."),
        ("I haven't had a good night's sleep in weeks", None),
    ],
)
def test_hellos_thanks_and_goodbyes_get_a_fitting_reply(said: str, reply: str | None) -> None:
    plan = first_reply(said)
    assert plan.tool_calls == []
    if reply is None:
        assert not (plan.say or "").startswith(("Thank you for talking", "You're welcome"))
    else:
        assert (plan.say or "").startswith(reply), plan.say


def test_a_farewell_that_may_be_a_warning_is_not_answered_as_a_goodbye() -> None:
    plan = first_reply("I just wanted to say goodbye to you.")
    assert not (plan.say or "").startswith("Thank you for talking with me today.")


def test_the_stack_starts_the_emulator_as_the_product(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emulator = start_service(
        "realtime-emulator",
        "opencouch.realtime_emulator",
        {"REALTIME_EMULATOR_PORT": str(port), "REALTIME_EMULATOR_SCENARIO": str(PRODUCT_FILE)},
        tmp_path,
        http_ok(f"{url}/healthz"),
    )
    try:
        emulator.wait_healthy()
        scenario = httpx.get(f"{url}/_emulator/scenario", timeout=10).json()
        assert scenario["name"] == "opencouch-companion"
    finally:
        assert emulator.stop() == 0


def product_words() -> list[str]:
    """Every tool name and exercise id of the product, and the words of the brief's check."""
    return [*TOOL_CATALOG, *get_args(ExerciseId)]


def test_the_emulator_source_names_no_product_tool_or_exercise() -> None:
    pattern = re.compile(
        r"lookup_crisis|wait_for_user|memory_status|guided_exercise|crisis_resources|"
        r"box_breathing|grounding_5|" + "|".join(re.escape(word) for word in product_words()),
        re.IGNORECASE,
    )
    files = [
        path for path in SOURCE.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]
    assert len(files) > 20
    found = {
        f"{path.relative_to(SOURCE)}:{number}: {match.group(0)}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        for match in pattern.finditer(line)
    }
    assert not found


def test_the_emulator_imports_no_other_workspace_package() -> None:
    workspace_import = re.compile(r"^\s*(from|import)\s+opencouch\.(?!realtime_emulator\b)", re.M)
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if workspace_import.search(path.read_text())
    ]
    assert offenders == []
