"""The private memory context a new persistent voice session starts with.

Standing preferences, the recall flag and, only when recall is on, a few saved facts in the
user's words. Never transcript text. Whole lines are dropped from the end rather than cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from opencouch.contracts.memory import MEMORY_CONTEXT_MAX_CHARS

CONTEXT_FACTS: Final = 5
"""How many saved facts a new session starts with when recall is on (the newest)."""


def compose_context(
    rules: Sequence[str], proactive_recall_enabled: bool, facts: Sequence[str] = ()
) -> str:
    """The context text, at most ``MEMORY_CONTEXT_MAX_CHARS`` characters."""
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
    if proactive_recall_enabled and facts:
        lines.append("Things this user told you before, in their words:")
        lines.extend(f"- {fact}" for fact in facts[:CONTEXT_FACTS])
    kept: list[str] = []
    size = 0
    for line in lines:
        added = len(line) + (1 if kept else 0)
        if size + added > MEMORY_CONTEXT_MAX_CHARS:
            break
        kept.append(line)
        size += added
    return "\n".join(kept)
