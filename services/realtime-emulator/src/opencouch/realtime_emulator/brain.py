"""The emulated model's mind: a scripted scenario first, then keyword rules, then a generic
brain that picks a tool by the session's own names and descriptions, then a fallback reply.

The brain only ever calls tools the session (or the response) actually offers, with arguments
built to satisfy each tool's JSON schema, so the client's own validation is exercised for
real. It knows no tool of its own and never logs what the user said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .arguments import fill_arguments
from .offer import Offer
from .scenario import (
    MATCH_PLACEHOLDER,
    OUTPUT_PLACEHOLDER,
    Reply,
    Rule,
    Scenario,
    Step,
    ToolCallStep,
    Turn,
    fill_arguments_from,
    fill_output,
    has_field,
    output_data,
)

log = logging.getLogger(__name__)

OUT_OF_BAND_SUMMARY = "Here is a short summary of the conversation so far."


@dataclass
class Plan:
    """One response's content: words to speak, then function calls."""

    say: str | None = None
    tool_calls: list[ToolCallStep] = field(default_factory=list)
    # What to do for each later ``response.create`` once these calls have outputs.
    after_tools: list[Step] = field(default_factory=list)
    # What to say instead once an output reports that its tool failed.
    after_tool_error: str | None = None


class Brain:
    """Decides each response of one call, following its scenario."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._next_turn = 0
        self._replies = 0
        self._called: set[str] = set()
        # The named rule that gave the last reply to the user, for a rule that ``answers`` it.
        self._last_rule: str | None = None
        # The call's last tool output and its tool, for a rule ``after_output``.
        self._last_output: tuple[str, object] | None = None

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
        answered, self._last_rule = self._last_rule, None
        if turn is not None:
            plan = _plan_of(turn)
        elif self.scenario.after_script == "silence":
            plan = Plan()
        else:
            plan = self._unscripted_reply(user_text, offer, answered)
        return self._within_offer(plan, user_text, offer)

    def follow_up(
        self, step: Step | None, finished_tools: list[str], offer: Offer, output: object = None
    ) -> Plan:
        """The response once tool outputs returned; ``step`` is the script's, if any.
        ``{output.field}`` in what it says is filled from ``output``, the last one."""
        self._replies += 1
        if finished_tools:
            self._last_output = (finished_tools[-1], output_data(output))
        if step is not None:
            said = None if step.say is None else self._spoken(step.say, output, step.say_otherwise)
            return self._within_offer(Plan(say=said, tool_calls=list(step.tools)), "", offer)
        return Plan(say=self._spoken(self.scenario.after_tool_outputs, output))

    def _spoken(self, line: str, output: object, otherwise: str | None = None) -> str:
        """``line`` filled from ``output``; when a field is missing, ``otherwise`` (filled as it
        can be), else the scenario's plain line."""
        filled = fill_output(line, output)
        if filled is not None:
            return filled
        if otherwise is not None:
            return fill_output(otherwise, output) or OUTPUT_PLACEHOLDER.sub("", otherwise).strip()
        log.warning("a line after tool outputs names a field the output does not have")
        fallback = self.scenario.after_tool_outputs
        return fill_output(fallback, output) or OUTPUT_PLACEHOLDER.sub("", fallback).strip()

    def tool_failed(self, line: str | None) -> Plan | None:
        """The response once an output reported its tool failed: the calling reply's line,
        else the scenario's; None when neither says one."""
        said = line or self.scenario.after_tool_error
        if said is None:
            return None
        self._replies += 1
        return Plan(say=said)

    def unprompted(self, conversation_empty: bool, offer: Offer) -> Plan:
        """A response nobody spoke to: a greeting first, a fallback reply later."""
        self._replies += 1
        self._last_rule = None
        if conversation_empty:
            return Plan(say=self.scenario.greeting)
        return self._within_offer(Plan(say=self._fallback()), "", offer)

    def check_in(self) -> Plan:
        """The response when the user has been silent past ``idle_timeout_ms``."""
        self._replies += 1
        self._last_rule = None
        return Plan(say=self.scenario.idle_check_in)

    def _unscripted_reply(self, text: str, offer: Offer, answered: str | None) -> Plan:
        for rule in self.scenario.rules:
            if rule.after_calling is not None and rule.after_calling not in self._called:
                continue
            if rule.answers is not None and rule.answers != answered:
                continue
            if rule.output_has and not (
                self._last_output is not None
                and all(has_field(self._last_output[1], path) for path in rule.output_has)
            ):
                continue
            matched = rule.matched(text)
            needed = [*rule.offered, *(call.name for call in rule.tools)]
            if matched is None or not all(offer.allows(name) for name in needed):
                continue
            hints = self._hints(rule)
            if hints is None:
                continue
            plan = _plan_of(rule)
            if plan.say is not None:
                plan.say = plan.say.replace(MATCH_PLACEHOLDER, matched)
            plan.tool_calls = [
                self._call(call.name, offer, text, arguments)
                for call, arguments in zip(rule.tools, hints, strict=True)
            ]
            self._last_rule = rule.name
            return plan
        name = offer.best_match(text) if self.scenario.guess_tools else None
        if name is not None:
            return Plan(tool_calls=[self._call(name, offer, text, {})])
        return Plan(say=self._fallback())

    def _hints(self, rule: Rule) -> list[dict[str, Any]] | None:
        """The arguments ``rule`` gives each of its calls; None when it follows up on a tool
        output that is not the last one, or names a field that output lacks."""
        if rule.after_output is None:
            return [call.arguments for call in rule.tools]
        if self._last_output is None or self._last_output[0] != rule.after_output:
            return None
        filled = [fill_arguments_from(call.arguments, self._last_output[1]) for call in rule.tools]
        complete = [arguments for arguments in filled if arguments is not None]
        return complete if len(complete) == len(filled) else None

    def _fallback(self) -> str:
        replies = self.scenario.fallback
        return replies[self._replies % len(replies)]

    def _call(self, name: str, offer: Offer, user_text: str, hints: dict[str, Any]) -> ToolCallStep:
        arguments = fill_arguments(offer.parameters(name), hints, user_text)
        return ToolCallStep(name=name, arguments=arguments if isinstance(arguments, dict) else {})

    def _within_offer(self, plan: Plan, user_text: str, offer: Offer) -> Plan:
        allowed = [call for call in plan.tool_calls if offer.allows(call.name)]
        skipped = len(plan.tool_calls) - len(allowed)
        if skipped:
            # A real model cannot call a tool it was not given; the script asked for one anyway.
            log.warning("brain skipped %d tool call(s) the session does not offer", skipped)
        plan.tool_calls = allowed
        if offer.tool_choice == "required" and not plan.tool_calls and offer.tools:
            name = offer.best_match(user_text) or next(iter(offer.tools))
            plan.tool_calls = [self._call(name, offer, user_text, {})]
        if isinstance(offer.tool_choice, dict) and not plan.tool_calls:
            forced = offer.tool_choice.get("name")
            if isinstance(forced, str) and forced in offer.tools:
                plan.tool_calls = [self._call(forced, offer, user_text, {})]
        if not plan.tool_calls and plan.after_tools and plan.say is None:
            plan.say = plan.after_tools[0].say
        if skipped and plan.say is None and not plan.tool_calls:
            plan.say = self._fallback()
        self._called.update(call.name for call in plan.tool_calls)
        return plan


def _plan_of(reply: Reply) -> Plan:
    return Plan(
        say=reply.say,
        tool_calls=list(reply.tools),
        after_tools=list(reply.after_tools),
        after_tool_error=reply.after_tool_error,
    )
