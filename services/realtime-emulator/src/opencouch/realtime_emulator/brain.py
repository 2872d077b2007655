"""The emulated model's mind: a scripted scenario first, keyword-driven replies after.

The brain only ever calls tools the session (or the response) actually offers, with arguments
built to satisfy each tool's JSON schema, so the product's own validation is exercised for
real. It never logs what the user said.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .scenario import Scenario, Step, ToolCallStep, Turn

log = logging.getLogger(__name__)

_CRISIS = re.compile(
    r"suicid|kill myself|end it all|end my life|want to die|wanna die|self[- ]?harm|"
    r"hurt myself|can'?t go on|no reason to live|overdose|better off dead",
    re.IGNORECASE,
)
_WAIT = re.compile(r"\bwait\b|hold on|give me a (moment|minute|second|sec)", re.IGNORECASE)
_MEMORY = re.compile(r"\bmemor(y|ies)\b|\bremember\b", re.IGNORECASE)
_BREATHING = re.compile(r"breath|breathe", re.IGNORECASE)
_GROUNDING = re.compile(r"ground|panic|calm (me )?down|anxious|anxiety", re.IGNORECASE)
_FEELINGS = (
    "overwhelmed",
    "stressed",
    "anxious",
    "sad",
    "lonely",
    "tired",
    "angry",
    "scared",
    "worried",
    "stuck",
    "hopeful",
)
_REFLECTIONS = (
    "That sounds like a lot to carry. What feels most important about it right now?",
    "I hear you. Can you tell me a little more about what that has been like?",
    "It makes sense that this is on your mind. What would help most in this moment?",
)
_AFTER_TOOL = {
    "lookup_crisis_resources": (
        "I'm really glad you told me. You don't have to go through this alone, and there are "
        "people you can reach right now. If you are in immediate danger, please call your "
        "local emergency number."
    ),
    "get_crisis_support_template": (
        "I'm here with you. Your safety matters most right now. Are you somewhere safe?"
    ),
    "show_memory_status": "Here is how memory works in this conversation.",
    "show_saved_memory": "Here is what I have saved about you.",
    "recall_saved_memory": "Here is what I remember about that.",
    "list_guided_exercise_skills": "There are a few exercises we could try. Which one sounds good?",
    "load_guided_exercise_skill": (
        "Let's begin. Breathe in slowly for four counts, hold for four, and breathe out for four."
    ),
    "record_guided_exercise_progress": "Well done. Let's go on to the next step.",
    "wait_for_user": "Take your time. I'm here whenever you're ready.",
}


@dataclass
class Plan:
    """One response's content: words to speak, then function calls."""

    say: str | None = None
    tool_calls: list[ToolCallStep] = field(default_factory=list)
    # What to do for each later ``response.create`` once these calls have outputs.
    after_tools: list[Step] = field(default_factory=list)


@dataclass
class Offer:
    """The tools a response may use and how it must choose among them."""

    tools: dict[str, dict[str, Any]]
    tool_choice: object = "auto"

    @classmethod
    def from_config(cls, tools: list[dict[str, Any]] | None, tool_choice: object) -> Offer:
        """Function tools by name from a session or response config."""
        functions = {
            tool["name"]: tool
            for tool in tools or []
            if tool.get("type") == "function" and isinstance(tool.get("name"), str)
        }
        return cls(tools=functions, tool_choice=tool_choice)

    def allows(self, name: str) -> bool:
        """Whether a call of ``name`` is offered and permitted by ``tool_choice``."""
        if name not in self.tools or self.tool_choice == "none":
            return False
        if isinstance(self.tool_choice, dict):
            return self.tool_choice.get("name") == name
        return True


class Brain:
    """Decides each response of one call, following its scenario."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._next_turn = 0
        self._replies = 0

    def take_turn(self) -> Turn | None:
        """The scripted turn for the next user utterance, or None once the script ran out."""
        if self._next_turn >= len(self.scenario.turns):
            return None
        turn = self.scenario.turns[self._next_turn]
        self._next_turn += 1
        return turn

    def spoken_transcript(self, turn: Turn | None) -> str:
        """What a detected utterance said: the script's words, else the unscripted default."""
        if turn is not None and turn.user is not None:
            return turn.user
        return self.scenario.unscripted_transcript

    def reply(self, turn: Turn | None, user_text: str, offer: Offer) -> Plan:
        """The response to a user utterance."""
        self._replies += 1
        if turn is not None:
            plan = Plan(
                say=turn.say, tool_calls=list(turn.tools), after_tools=list(turn.after_tools)
            )
        elif self.scenario.after_script == "silence":
            plan = Plan()
        else:
            plan = self._keyword_reply(user_text, offer)
        return self._within_offer(plan, user_text, offer)

    def follow_up(self, step: Step | None, finished_tools: list[str], offer: Offer) -> Plan:
        """The response once tool outputs returned; ``step`` is the script's, if any."""
        self._replies += 1
        if step is not None:
            return self._within_offer(Plan(say=step.say, tool_calls=list(step.tools)), "", offer)
        for name in finished_tools:
            if name in _AFTER_TOOL:
                return Plan(say=_AFTER_TOOL[name])
        return Plan(say="Thank you for waiting. I'm here with you.")

    def unprompted(self, conversation_empty: bool, offer: Offer) -> Plan:
        """A response nobody spoke to: a greeting first, a gentle check-in later."""
        self._replies += 1
        if conversation_empty:
            return Plan(say=self.scenario.greeting)
        return self._within_offer(Plan(say="I'm still here with you."), "", offer)

    def check_in(self) -> Plan:
        """The response when the user has been silent past ``idle_timeout_ms``."""
        self._replies += 1
        return Plan(say=self.scenario.idle_check_in)

    def _keyword_reply(self, text: str, offer: Offer) -> Plan:
        if _CRISIS.search(text) and offer.allows("lookup_crisis_resources"):
            return Plan(tool_calls=[self._call("lookup_crisis_resources", offer, text, {})])
        if _WAIT.search(text) and offer.allows("wait_for_user"):
            return Plan(tool_calls=[self._call("wait_for_user", offer, text, {})])
        if _MEMORY.search(text) and offer.allows("show_memory_status"):
            return Plan(tool_calls=[self._call("show_memory_status", offer, text, {})])
        breathing = _BREATHING.search(text)
        if breathing or _GROUNDING.search(text):
            exercise = "grounding_box_breathing" if breathing else "grounding_5_4_3_2_1"
            if offer.allows("load_guided_exercise_skill"):
                hints = {"exercise_type": exercise, "runtime_action": "start"}
                return Plan(
                    tool_calls=[self._call("load_guided_exercise_skill", offer, text, hints)]
                )
            if offer.allows("list_guided_exercise_skills"):
                hints = {"channel": "voice"}
                return Plan(
                    tool_calls=[self._call("list_guided_exercise_skills", offer, text, hints)]
                )
        return Plan(say=self._reflection(text))

    def _reflection(self, text: str) -> str:
        lowered = text.lower()
        for feeling in _FEELINGS:
            if feeling in lowered:
                return (
                    f"It sounds like you're feeling {feeling}. That makes sense. "
                    "What has been weighing on you the most?"
                )
        return _REFLECTIONS[self._replies % len(_REFLECTIONS)]

    def _call(self, name: str, offer: Offer, user_text: str, hints: dict[str, Any]) -> ToolCallStep:
        parameters = offer.tools[name].get("parameters") or {"type": "object"}
        arguments = fill_arguments(parameters, hints, user_text)
        return ToolCallStep(name=name, arguments=arguments if isinstance(arguments, dict) else {})

    def _within_offer(self, plan: Plan, user_text: str, offer: Offer) -> Plan:
        allowed = [call for call in plan.tool_calls if offer.allows(call.name)]
        skipped = len(plan.tool_calls) - len(allowed)
        if skipped:
            # A real model cannot call a tool it was not given; the script asked for one anyway.
            log.warning("brain skipped %d tool call(s) the session does not offer", skipped)
        plan.tool_calls = allowed
        if offer.tool_choice == "required" and not plan.tool_calls and offer.tools:
            name = next(iter(offer.tools))
            plan.tool_calls = [self._call(name, offer, user_text, {})]
        if isinstance(offer.tool_choice, dict) and not plan.tool_calls:
            forced = offer.tool_choice.get("name")
            if isinstance(forced, str) and forced in offer.tools:
                plan.tool_calls = [self._call(forced, offer, user_text, {})]
        if not plan.tool_calls and plan.after_tools and plan.say is None:
            plan.say = plan.after_tools[0].say
        if skipped and plan.say is None and not plan.tool_calls:
            plan.say = "I'm here with you."
        return plan


# -- arguments from a JSON schema ------------------------------------------------------------


def fill_arguments(schema: dict[str, Any], hints: dict[str, Any], user_text: str) -> Any:
    """A value valid for ``schema``: hints where they fit, else sensible made-up values."""
    return _Filler(schema, user_text).value(schema, hints, name="")


class _Filler:
    def __init__(self, root: dict[str, Any], user_text: str) -> None:
        self._root = root
        self._text = user_text.strip() or "emulated request"

    def value(self, schema: dict[str, Any], hint: Any, name: str) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return hint if hint in schema["enum"] else copy.deepcopy(schema["enum"][0])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [
                    self._resolve(o) for o in schema[key] if self._resolve(o).get("type") != "null"
                ]
                merged = {k: v for k, v in schema.items() if k != key}
                return self.value({**(options[0] if options else {}), **merged}, hint, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint if isinstance(hint, dict) else {})
        if hint is not None and _fits(hint, kind):
            return copy.deepcopy(hint)
        if "default" in schema:
            return copy.deepcopy(schema["default"])
        if kind == "array":
            items = schema.get("items") or {"type": "string"}
            return [self.value(items, None, name) for _ in range(int(schema.get("minItems", 0)))]
        if kind == "boolean":
            return True
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            if "exclusiveMinimum" in schema and "minimum" not in schema:
                low = low + 1
            value = max(low, 1) if "maximum" not in schema or schema["maximum"] >= 1 else low
            return int(value) if kind == "integer" else float(value)
        return self._string(schema, name)

    def _object(self, schema: dict[str, Any], hints: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        wanted = [
            *schema.get("required", []),
            *(key for key in hints if key not in schema.get("required", [])),
        ]
        return {
            key: self.value(properties.get(key, {}), hints.get(key), key)
            for key in wanted
            if key in properties or schema.get("additionalProperties", True) is not False
        }

    def _string(self, schema: dict[str, Any], name: str) -> str:
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        if schema.get("format") == "date":
            return "2025-01-01"
        lowered = name.lower()
        if any(
            word in lowered for word in ("query", "question", "quote", "text", "topic", "summary")
        ):
            text = self._text
        elif "location" in lowered or "region" in lowered or "country" in lowered:
            text = "United States"
        elif "language" in lowered or "locale" in lowered:
            text = "en"
        elif "id" in lowered.split("_"):
            text = "step_1"
        else:
            text = "emulated"
        minimum = int(schema.get("minLength", 1))
        maximum = int(schema.get("maxLength", max(len(text), minimum)))
        text = text[:maximum]
        return text + "x" * max(0, minimum - len(text))

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            target: Any = self._root
            if not ref.startswith("#/"):
                return {}
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema


def _fits(value: Any, kind: object) -> bool:
    checks: dict[object, tuple[type, ...]] = {
        "string": (str,),
        "integer": (int,),
        "number": (int, float),
        "boolean": (bool,),
        "array": (list,),
    }
    expected = checks.get(kind)
    if expected is None:
        return True
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, expected)
