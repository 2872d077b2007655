"""The intent gate: a memory change runs only when the user asked for it in their own words.

The model quotes the user (``user_quote``). The quote counts only if, normalised, it appears in
what the user said: the current message or one of their last few turns. Assistant lines and the
model's other arguments never count, so the model cannot talk itself into a change.
"""

from __future__ import annotations

import re
from typing import Final

from opencouch.contracts.common import ErrorCode
from opencouch.contracts.tools import ToolCallContext
from opencouch.runtime.errors import ServiceError

MIN_QUOTE_CHARS: Final = 8
"""A normalised quote shorter than this ("yes", "ok do it") proves nothing."""
USER_TURNS_CHECKED: Final = 3
"""Besides the current message, how many of the user's latest transcript lines count."""

_PUNCTUATION: Final = re.compile(r"[^\w\s]|_")
_SPACES: Final = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, runs of whitespace to one space, trimmed."""
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def user_words(context: ToolCallContext) -> list[str]:
    """What the user said that may back a quote: the current message and latest user lines."""
    said = [line.text for line in context.transcript if line.role == "user"]
    return [context.current_user_message, *said[-USER_TURNS_CHECKED:]]


def quote_verified(quote: str, context: ToolCallContext) -> bool:
    """Whether ``quote`` is long enough and appears, as whole words, in the user's own words."""
    wanted = normalise(quote)
    if len(wanted) < MIN_QUOTE_CHARS:
        return False
    padded = f" {wanted} "
    return any(padded in f" {normalise(words)} " for words in user_words(context) if words)


def require_user_intent(quote: str, context: ToolCallContext) -> None:
    """Refuse (``user_intent_not_verified``) unless ``quote`` is the user's own recent words."""
    if not quote_verified(quote, context):
        raise ServiceError(
            ErrorCode.USER_INTENT_NOT_VERIFIED,
            "The user's request could not be matched to their own recent words.",
        )
