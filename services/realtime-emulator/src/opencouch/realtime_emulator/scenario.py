"""Scenarios: what the emulated model hears and does (YAML or JSON).

The emulator has no speech recognition, so a scenario supplies the transcript of each
detected utterance in order, what to call for it and what to say once tool outputs return.
Once the script runs out, keyword rules (match words -> speak and call offered tools) answer,
then the generic brain, which picks a tool by the session's own names and descriptions.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RealtimeError
from .faults import Faults

SCENARIO_HEADER = "X-Emulator-Scenario"
# Where a rule's ``say`` puts the words that matched.
MATCH_PLACEHOLDER = "{match}"
# Where a line said after tool outputs puts a field of the last output (``{output.a.b}``);
# ``*`` takes the rest of the path in each item of a list (``{output.items.*.text}``).
OUTPUT_PLACEHOLDER = re.compile(r"\{output((?:\.(?:[A-Za-z0-9_]+|\*))+)\}")


def output_data(output: object) -> object:
    """A tool's output as JSON data (a ``function_call_output`` is a JSON string); None when
    it is not JSON."""
    try:
        return json.loads(output) if isinstance(output, str) else output
    except ValueError:
        return None


def fill_output(text: str, output: object) -> str | None:
    """``text`` with each ``{output.path}`` replaced by that field of ``output`` (a tool's JSON
    output); None when a field is missing or is not text, a number or a list of them."""
    data = output_data(output)
    missing = False

    def field(found: re.Match[str]) -> str:
        nonlocal missing
        value = _at(data, found.group(1).split(".")[1:])
        if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
            if value:
                return ", ".join(map(str, value))
        elif value is not _MISSING and value is not None and not isinstance(value, dict | list):
            return str(value)
        missing = True
        return ""

    filled = OUTPUT_PLACEHOLDER.sub(field, text)
    return None if missing else filled


class ToolCallStep(BaseModel):
    """One function call the model makes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


_MISSING = object()


def _at(data: Any, path: list[str]) -> Any:
    """The value at ``path`` in ``data``; ``*`` maps the rest of the path over a list's items
    (an item without it is left out). ``_MISSING`` when there is none."""
    value = data
    for n, key in enumerate(path):
        if key == "*":
            if not isinstance(value, list):
                return _MISSING
            found = [_at(item, path[n + 1 :]) for item in value]
            return [item for item in found if item is not _MISSING]
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def has_field(output: object, path: str) -> bool:
    """Whether ``output`` (a tool's JSON output) has a value at the dotted ``path`` that is not
    null or an empty list."""
    value = _at(output_data(output), path.split("."))
    return value is not _MISSING and value is not None and value != []


def fill_arguments_from(arguments: dict[str, Any], output: object) -> dict[str, Any] | None:
    """``arguments`` with ``{output.path}`` in each text value filled from ``output``; None when
    a field is missing."""
    filled: dict[str, Any] = {}
    for name, value in arguments.items():
        if isinstance(value, str) and OUTPUT_PLACEHOLDER.search(value):
            text = fill_output(value, output)
            if text is None:
                return None
            filled[name] = text
        else:
            filled[name] = value
    return filled


class Step(BaseModel):
    """One response: optionally speak, then optionally call tools."""

    model_config = ConfigDict(extra="forbid")

    say: str | None = None
    # Said instead of ``say`` when the output lacks a field ``say`` names (``{output.a}``).
    say_otherwise: str | None = None
    tools: list[ToolCallStep] = Field(default_factory=list)


class Reply(Step):
    """A reply to the user, and the responses that follow once its tools have outputs."""

    # Responses after the tool outputs return, one per ``response.create``; a string is a
    # short way to write ``{say: ...}``, and one step needs no list.
    after_tools: list[Step] = Field(default_factory=list)
    # Said instead, once an output reports that its tool failed (see ``tool_failed``);
    # unset: the scenario's ``after_tool_error``.
    after_tool_error: str | None = None

    @field_validator("after_tools", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        steps = value if isinstance(value, list) else [value]
        return [{"say": step} if isinstance(step, str) else step for step in steps]


class Turn(Reply):
    """What happens for one user utterance, spoken or typed."""

    # The transcript of this utterance when it is spoken; typed text keeps its own words.
    user: str | None = None


class Rule(Reply):
    """A keyword rule: when the user's words match, reply like this.

    A rule applies only when every tool it calls is offered to the response (and allowed by
    its ``tool_choice``), so a later rule can be the fallback for a tool that is missing.
    Arguments given are used where the tool's schema accepts them; the rest are made up
    to satisfy the schema.
    """

    # Phrases, any of which matches: whole words, case-insensitive; a word ending in ``*``
    # matches any ending (``breath*`` matches "breathe" and "breathing").
    match: list[str] = Field(min_length=1)
    # Phrases, any of which keeps the rule from applying though ``match`` matched in the same
    # sentence: what the words are not (a negation, a song, someone else's words), so its
    # phrases can stay short. Another sentence that matches with none of them still applies.
    unless: list[str] = []
    # Applies only once this tool was called earlier in the call (a follow-up to it).
    after_calling: str | None = None
    # Applies only when these tools are offered, though it calls none of them: a reply that
    # depends on what the model can do (promise to remember only where memory tools are).
    offered: list[str] = []
    # Applies only when the last tool output of the call came from this tool; its tools'
    # arguments may then name fields of that output (``{output.a.b}``), and the rule does not
    # apply when one is missing (a step of something the tool started, e.g. an exercise).
    after_output: str | None = None
    # Applies only when the last tool output has each of these fields (``staged``, ``a.b``;
    # missing, null or an empty list counts as not having it): a yes that confirms what a tool
    # staged applies only when something was staged.
    output_has: list[str] = []
    # This rule's name, for ``answers``.
    name: str | None = None
    # Applies only as the reply to what the rule of this name said last (the user answering
    # its question, e.g. "yes" to an offer); any other reply in between ends the chance.
    answers: str | None = None

    @field_validator("match", "unless")
    @classmethod
    def _phrases_compile(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            if not phrase.strip():
                raise ValueError("a phrase must not be empty")
            phrase_pattern(phrase)
        return phrases

    def matched(self, text: str) -> str | None:
        """The words of ``text`` that matched, or None."""
        normalised = normalise(text)
        sentences = _SENTENCE_END.split(normalised) if self.unless else [normalised]
        for sentence in sentences:
            for phrase in self.match:
                found = phrase_pattern(phrase).search(sentence)
                if found:
                    # Unless phrases are read only where words matched: most words match no rule.
                    if any(phrase_pattern(other).search(sentence) for other in self.unless):
                        break  # this sentence is not what the rule is for; the next may be
                    return found.group(0)
        return None


class Scenario(BaseModel):
    """A whole call's script, its rules, its faults and its pace."""

    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    # Said when the client asks for a response before the user has said anything.
    greeting: str = "Hello! How can I help you today?"
    # Said when the user stays silent past the session's ``idle_timeout_ms``.
    idle_check_in: str = "Are you still there?"
    turns: list[Turn] = Field(default_factory=list)
    # Transcript of a spoken utterance once the script has run out.
    unscripted_transcript: str = "Hello, can you hear me?"
    # What to do once the script has run out: rules and the generic brain, or say nothing.
    after_script: Literal["keywords", "silence"] = "keywords"
    # Checked in order against what the user said, once the script has run out.
    rules: list[Rule] = Field(default_factory=list)
    # When no rule applies: call the offered tool whose name and description share the most
    # words with the user's (the generic brain), or, when false, answer with a fallback line.
    guess_tools: bool = True
    # Said, in turn, when nothing else applies.
    fallback: list[str] = Field(
        default_factory=lambda: [
            "I hear you. Could you tell me a little more?",
            "Okay. What would you like to do next?",
            "Thanks for telling me. Go on, I'm listening.",
        ],
        min_length=1,
    )
    # Said after tool outputs return when the reply that called them said nothing more.
    after_tool_outputs: str = "Thanks for waiting. I have the result now."
    # Said after an output that reports its tool failed, unless the calling reply says its
    # own; unset: such an output is answered like any other.
    after_tool_error: str | None = None
    # How many times faster than real time replies are generated (audio still plays in real
    # time over WebRTC); 1.0 keeps a response in progress for as long as its audio lasts.
    generation_speed: float = Field(default=4.0, gt=0, le=1000)
    faults: Faults = Field(default_factory=Faults)

    @model_validator(mode="after")
    def _answers_name_a_rule(self) -> Scenario:
        names = [rule.name for rule in self.rules if rule.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("two rules have the same name")
        for rule in self.rules:
            if rule.answers is not None and rule.answers not in names:
                raise ValueError(f"a rule answers {rule.answers!r}, which no rule is named")
        return self


# Where one sentence ends and the next begins, for a rule's ``unless`` phrases: each is read
# in the sentence the rule matched, so a song or a joke told in one sentence does not hide what
# the next says.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def normalise(text: str) -> str:
    """Lower case with typographic apostrophes made plain, as rules match it."""
    return text.lower().replace("\u2019", "'")


@lru_cache(maxsize=1024)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A rule phrase as a regular expression over normalised text.

    Whole words: not inside a word, nor a contraction ("t want" is not in "don't want", "i" is
    not in "i'm"); an apostrophe that opens or closes a quotation is not part of a word, so
    "'i want to die'" has "i want to die" in it."""
    words = []
    for word in normalise(phrase).split():
        open_ended = word.endswith("*")
        escaped = re.escape(word.rstrip("*"))
        words.append(escaped + (r"[\w'-]*" if open_ended else ""))
    return re.compile(r"(?<!\w)(?<!\w')" + r"\s+".join(words) + r"(?!\w)(?!'\w)")


def load_scenario(path: Path) -> Scenario:
    """A scenario file (``.yaml``, ``.yml`` or ``.json``)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return Scenario.model_validate(data or {})


def parse_scenario(text: str, *, source: str = SCENARIO_HEADER) -> Scenario:
    """A scenario given inline (JSON or YAML); 400 in OpenAI's shape when invalid."""
    try:
        data = yaml.safe_load(text)
        return Scenario.model_validate(data or {})
    except (yaml.YAMLError, ValidationError) as error:
        problem = str(error).splitlines()[0]
        if isinstance(error, ValidationError) and error.errors():
            first = error.errors()[0]
            problem = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise RealtimeError(
            message=f"Invalid scenario in {source}: {problem}",
            code="invalid_value",
            param=source,
        ) from error
