"""Content words of free text and loose word matching, for choosing among tools and enums.

Deliberately crude: the emulated model only needs to find the tool (or enum value) whose
name or description shares the user's meaningful words, the way a person skimming would.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Words too common to say what a user wants, including the verbs tool names start with.
_STOPWORD_TEXT = """
a about after again all also am an and any are as at be been before being but by can
could did do does doing for from get give go had has have he her here him his how i if
in into is it its just know let like list make me more my need no not now of off on one
or our out over please set she show so some tell than that the their them then there
these they this to too up us use very want was way we were what when where which who why
will with would yes you your
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_MIN_STEM = 4


def content_words(text: str) -> list[str]:
    """The meaningful words of ``text`` (names split at ``_``, ``-`` and camelCase)."""
    spaced = _CAMEL.sub(" ", text).lower()
    return [word for word in _WORD.findall(spaced) if word not in _STOPWORDS and len(word) > 2]


def same_word(a: str, b: str) -> bool:
    """Equal, or sharing a stem: "breathing" ~ "breathe", "memories" ~ "memory"."""
    if a == b:
        return True
    shared = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        shared += 1
    return shared >= _MIN_STEM and shared >= min(len(a), len(b)) - 2


def overlap(wanted: list[str], offered: list[str]) -> int:
    """How many of ``wanted`` match some word of ``offered``."""
    return sum(1 for word in wanted if any(same_word(word, other) for other in offered))
