"""A new session's memory context: preferences and the recall flag, facts only with recall on,
whole lines, never over the budget.
"""

from __future__ import annotations

from opencouch.contracts.memory import MEMORY_CONTEXT_MAX_CHARS
from opencouch.memory.context import CONTEXT_FACTS, compose_context
from opencouch.memory.intent import normalise


def test_facts_are_shared_only_when_recall_is_on() -> None:
    facts = ["My dog is called Rex."]
    assert "Rex" not in compose_context(["Be brief."], False, facts)
    on = compose_context(["Be brief."], True, facts)
    assert "- Be brief." in on
    assert "- My dog is called Rex." in on
    assert on.startswith("Proactive recall: on")


def test_the_context_never_exceeds_its_budget_and_drops_whole_lines() -> None:
    rules = [f"Preference number {n} " + "x" * 150 for n in range(30)]
    text = compose_context(rules, True, [f"fact {n}" for n in range(30)])
    assert len(text) <= MEMORY_CONTEXT_MAX_CHARS
    assert all(
        line in {"Standing response preferences of this user:"}
        or line.startswith(("- ", "Proactive"))
        for line in text.splitlines()
    )
    assert text.splitlines()[-1] in {f"- {rule}" for rule in rules}


def test_at_most_a_few_facts() -> None:
    text = compose_context([], True, [f"fact {n}" for n in range(20)])
    assert sum(line.startswith("- fact") for line in text.splitlines()) == CONTEXT_FACTS


def test_normalising_a_quote() -> None:
    assert normalise("  Please,   KEEP it\tshort!! ") == "please keep it short"
    assert normalise("don't_stop") == "don t stop"
