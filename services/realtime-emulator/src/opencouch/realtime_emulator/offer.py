"""The function tools a response may call, and how the generic brain chooses one of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .words import content_words, overlap

# A tool is chosen when the user's words share at least one word with its name, or this many
# with its description.
_NAME_WEIGHT = 3
_ENOUGH = 3


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

    def parameters(self, name: str) -> dict[str, Any]:
        """The JSON schema of an offered tool's arguments."""
        parameters = self.tools[name].get("parameters")
        return parameters if isinstance(parameters, dict) else {"type": "object"}

    def best_match(self, user_text: str) -> str | None:
        """The allowed tool the user's words point at: named outright, or sharing words
        with its name (weighed most) and description. None when nothing fits well enough."""
        lowered = user_text.lower()
        wanted = content_words(user_text)
        best: str | None = None
        best_score = 0
        for name, tool in self.tools.items():
            if not self.allows(name):
                continue
            if name.lower() in lowered:
                return name
            score = _NAME_WEIGHT * overlap(wanted, content_words(name)) + overlap(
                wanted, content_words(str(tool.get("description") or ""))
            )
            if score > best_score:
                best, best_score = name, score
        return best if best_score >= _ENOUGH else None
