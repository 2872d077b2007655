"""What the emulated model says next in one call: the brain, fed with what the user said and
which tool outputs came back.

Each user item is answered once; a reply cut short by the user is answered again only when
they said nothing newer. After tool outputs, the reply that called them goes on with its
scripted follow-ups, one per response.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from .brain import OUT_OF_BAND_SUMMARY, Brain, Plan
from .offer import Offer
from .scenario import Step, ToolCallStep, Turn


@dataclass
class _UserTurn:
    """What the brain knows about one user item."""

    text: str
    turn: Turn | None
    plan: Plan | None = None


@dataclass
class _PendingToolCall:
    name: str
    follow_ups: list[Step]
    on_error: str | None
    failed: bool = False
    output: object = None


def tool_failed(output: object) -> bool:
    """Whether a ``function_call_output`` reports that its tool failed: a JSON object with a
    non-empty ``error`` member, or ``status`` ``"error"`` or ``"failed"``."""
    if not isinstance(output, str):
        return False
    try:
        data = json.loads(output)
    except ValueError:
        return False
    return isinstance(data, dict) and (
        bool(data.get("error")) or data.get("status") in ("error", "failed")
    )


class Planner:
    """Plans each response of one call."""

    def __init__(self, brain: Brain, *, unanswered_tool_call: str | None = None) -> None:
        self.brain = brain
        self._user_turns: dict[str, _UserTurn] = {}
        self._unanswered: str | None = None
        self._pending: dict[str, _PendingToolCall] = {}
        self._answered: list[_PendingToolCall] = []
        # The fault: one reply also calls a tool the client was never offered.
        self._phantom_tool = unanswered_tool_call

    def heard(self, item_id: str) -> str:
        """A spoken utterance became user item ``item_id``; what it said."""
        turn = self.brain.take_turn()
        transcript = self.brain.spoken_transcript(turn)
        self._user_turns[item_id] = _UserTurn(text=transcript, turn=turn)
        self._unanswered = item_id
        return transcript

    def typed(self, item_id: str, text: str) -> None:
        """The client added user item ``item_id`` saying ``text``."""
        self._user_turns[item_id] = _UserTurn(text=text, turn=self.brain.take_turn())
        self._unanswered = item_id

    def reopen(self, item_id: str) -> None:
        """The reply to ``item_id`` was cut short and nothing newer was said: answer it again."""
        if self._unanswered is None:
            self._unanswered = item_id

    def tool_called(self, call_id: str, name: str, plan: Plan) -> None:
        """A function call of ``plan`` went out; remember what to say once its output returns."""
        self._pending[call_id] = _PendingToolCall(
            name=name, follow_ups=list(plan.after_tools), on_error=plan.after_tool_error
        )

    def cut_short(self, call_ids: list[str]) -> None:
        """The response that made these calls was cancelled (the user spoke over it, say): an
        output sent for one later (a client saying it did not run) asks for no follow-up; the
        user's new words are what the next response answers."""
        for call_id in call_ids:
            self._pending.pop(call_id, None)

    def tool_output(self, call_id: str, output: object) -> None:
        """The client answered a function call with ``output``."""
        pending = self._pending.pop(call_id, None)
        if pending is not None:
            pending.failed = tool_failed(output)
            pending.output = output
            self._answered.append(pending)

    def next_plan(
        self, offer: Offer, *, out_of_band: bool, idle: bool, conversation_empty: bool
    ) -> tuple[Plan, str | None]:
        """The next response's plan, and the user item it answers (if it answers one)."""
        if out_of_band:
            return Plan(say=OUT_OF_BAND_SUMMARY), None
        if self._answered:
            answered, self._answered = self._answered, []
            failed = next((call for call in answered if call.failed), None)
            if failed is not None and (said := self.brain.tool_failed(failed.on_error)):
                return said, None  # the calling reply's later steps assumed it worked
            follow_ups = answered[-1].follow_ups
            step = follow_ups.pop(0) if follow_ups else None
            plan = self.brain.follow_up(
                step, [call.name for call in answered], offer, answered[-1].output
            )
            plan.after_tools = follow_ups
            return plan, None
        if self._unanswered is not None:
            trigger, self._unanswered = self._unanswered, None
            user_turn = self._user_turns[trigger]
            if user_turn.plan is None:
                user_turn.plan = self.brain.reply(user_turn.turn, user_turn.text, offer)
            plan = copy.deepcopy(user_turn.plan)
            if self._phantom_tool:
                plan.tool_calls.append(ToolCallStep(name=self._phantom_tool, arguments={}))
                self._phantom_tool = None
            return plan, trigger
        if idle:
            return self.brain.check_in(), None
        return self.brain.unprompted(conversation_empty, offer), None
