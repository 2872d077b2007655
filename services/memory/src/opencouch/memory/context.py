"""The private memory context a new persistent voice session starts with."""

from __future__ import annotations

from collections.abc import Sequence

from opencouch.contracts.memory import MEMORY_CONTEXT_MAX_CHARS


def compose_context(rules: Sequence[str], proactive_recall_enabled: bool) -> str:
    """Standing preferences and the recall flag, cut to fit the context budget.

    Whole lines are dropped from the end rather than cut mid-sentence.
    """
    lines = [
        "Proactive recall: "
        + (
            "on; saved memory may be brought up when it helps."
            if proactive_recall_enabled
            else "off; use saved memory only when the user asks for it."
        ),
    ]
    if rules:
        lines.append("Standing response preferences of this user:")
        lines.extend(f"- {rule}" for rule in rules)
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > MEMORY_CONTEXT_MAX_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)
