"""The session arc: what a finished session was about, as a summariser drafts it and as it is
kept once code has held it to its limits.

Two summarisers share one interface (``Summariser``): a language model's, and an extractive
one that needs no network. Whichever drafts the arc, the limits below are enforced here, by
code, so no model output can exceed them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from opencouch.contracts.finalizer import MOOD_MAX_CHARS, SummaryMethod
from opencouch.contracts.memory import SUMMARY_MAX_CHARS
from opencouch.contracts.voice_api import TurnOutcome

MIN_SUBSTANTIVE_TURNS: Final = 3
"""Fewer substantive user turns than this, and a session is too thin for an arc."""
MAX_THEMES: Final = 3
THEME_MAX_CHARS: Final = 60
MAX_SUMMARY_SENTENCES: Final = 4
MAX_THREADS: Final = 5
"""Open loops, and resolved threads, kept at most."""
THREAD_MAX_CHARS: Final = 160

_WORD = re.compile(r"[A-Za-z0-9']+")
# Words that carry no content on their own: a turn made only of these is not substantive.
_FILLERS: Final = frozenset(
    [
        "a",
        "ah",
        "alright",
        "and",
        "bye",
        "cool",
        "er",
        "erm",
        "fine",
        "good",
        "great",
        "hello",
        "hey",
        "hi",
        "hm",
        "hmm",
        "huh",
        "i",
        "i'm",
        "it",
        "ok",
        "okay",
        "oh",
        "right",
        "so",
        "sure",
        "thanks",
        "thank",
        "the",
        "uh",
        "um",
        "yeah",
        "yep",
        "yes",
        "no",
        "nope",
        "mhm",
        "mm",
        "well",
        "you",
    ]
)


@dataclass(frozen=True)
class SpokenTurn:
    """One exchange of the session, as the summarisers read it."""

    user_text: str
    assistant_text: str
    outcome: TurnOutcome
    spoken_at: datetime


class ArcDraft(BaseModel):
    """A session arc as a summariser drafts it; also the language model's output schema.

    Limits are asked for in the descriptions, not enforced by the schema: strict structured
    outputs take no string lengths, and a draft over a limit is still worth keeping in part.
    ``settle`` enforces every limit.
    """

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(
        description=(
            "Two to four plain sentences, at most 600 characters, in the third person "
            "('The user ...'): what the session was about and how it went."
        )
    )
    themes: list[str] = Field(
        description="Up to three short topic labels of one to three words, most central first.",
    )
    mood_opened: str | None = Field(
        description="How the user seemed at the start, in a few words (at most 40 characters); "
        "null when it cannot be told."
    )
    mood_closed: str | None = Field(
        description="How the user seemed at the end, in a few words (at most 40 characters); "
        "null when it cannot be told."
    )
    open_loops: list[str] = Field(
        description="Up to five questions or concerns still open when the session ended, "
        "one short line each.",
    )
    resolved_threads: list[str] = Field(
        description="Up to five concerns the session settled or next steps the user chose, "
        "one short line each.",
    )


@dataclass(frozen=True)
class SessionArc:
    """A session arc within its limits, and how it was made."""

    summary: str
    themes: tuple[str, ...]
    mood_opened: str | None
    mood_closed: str | None
    open_loops: tuple[str, ...]
    resolved_threads: tuple[str, ...]
    method: SummaryMethod


class Summariser(Protocol):
    """Drafts the arc of a session that has enough substance for one."""

    async def summarise(self, turns: Sequence[SpokenTurn], *, owner_digest: str) -> SessionArc:
        """The arc of ``turns`` (in speech order), held to its limits.

        ``owner_digest``: an opaque hash of the session's owner, for a provider's abuse
        monitoring; never the id itself.
        """
        ...


def is_substantive(user_text: str) -> bool:
    """Whether a user turn says something: three words or more, two of them not filler."""
    words = [word.lower() for word in _WORD.findall(user_text)]
    content = [word for word in words if word not in _FILLERS]
    return len(words) >= 3 and len(content) >= 2


def substantive_turns(turns: Sequence[SpokenTurn]) -> int:
    """How many user turns say something."""
    return sum(1 for turn in turns if is_substantive(turn.user_text))


def settle(draft: ArcDraft, method: SummaryMethod) -> SessionArc | None:
    """``draft`` held to the arc's limits; None when it has no usable summary."""
    summary = clip_sentences(draft.summary, SUMMARY_MAX_CHARS, MAX_SUMMARY_SENTENCES)
    if not summary:
        return None
    return SessionArc(
        summary=summary,
        themes=_distinct(draft.themes, MAX_THEMES, THEME_MAX_CHARS),
        mood_opened=_mood(draft.mood_opened),
        mood_closed=_mood(draft.mood_closed),
        open_loops=_distinct(draft.open_loops, MAX_THREADS, THREAD_MAX_CHARS),
        resolved_threads=_distinct(draft.resolved_threads, MAX_THREADS, THREAD_MAX_CHARS),
        method=method,
    )


_CLOSERS = "\"')]"
# The space after a sentence's end, where up to two closers ("...", '...', (...)) stay with the
# sentence they close: Python's lookbehind is of fixed width, hence one per count.
_CLOSER = f"[{re.escape(_CLOSERS)}]"
_SENTENCE_END = re.compile(rf"(?:(?<=[.!?])|(?<=[.!?]{_CLOSER})|(?<=[.!?]{_CLOSER}{{2}}))\s+")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after each ``.``, ``!`` or ``?`` (and the quotes or brackets that close
    there) that a space follows."""
    flat = " ".join(text.split())
    return [part.strip() for part in _SENTENCE_END.split(flat) if part.strip()]


def ending(sentence: str) -> str:
    """The sentence's last mark, past any quotes or brackets closing it: ``?`` for a question."""
    return sentence.rstrip(_CLOSERS)[-1:]


def clip_sentences(text: str, max_chars: int, max_sentences: int) -> str:
    """Whole sentences of ``text`` up to both limits; a lone first sentence that is too long
    is cut at a word and ends with an ellipsis."""
    kept: list[str] = []
    for sentence in split_sentences(_storable(text))[:max_sentences]:
        candidate = " ".join([*kept, sentence])
        if len(candidate) > max_chars:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return clip_words(_storable(text), max_chars)


def clip_words(text: str, max_chars: int) -> str:
    """``text`` on one line, cut at a word to at most ``max_chars`` (with an ellipsis)."""
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    cut = flat[: max_chars - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return f"{cut}…"


def _mood(value: str | None) -> str | None:
    if value is None:
        return None
    mood = clip_words(_storable(value), MOOD_MAX_CHARS).rstrip(".")
    return mood or None


def _distinct(values: Sequence[str], limit: int, max_chars: int) -> tuple[str, ...]:
    kept: list[str] = []
    for value in values:
        item = clip_words(_storable(value), max_chars)
        if item and item.lower() not in {k.lower() for k in kept}:
            kept.append(item)
        if len(kept) == limit:
            break
    return tuple(kept)


def _storable(text: str) -> str:
    """Without NUL or lone surrogates, which no store keeps (a model may emit them)."""
    return re.sub("[\x00\ud800-\udfff]", "", text)
