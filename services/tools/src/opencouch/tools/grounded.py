"""Grounded lookup: answers built only from the curated corpus, with their citations.

The corpus (migration ``0003_grounded_corpus.sql`` and later ones) holds short passages, each
our own summary of one page of public guidance. Postgres full-text search finds them; a question
whose topic the best passage barely covers gets ``no_verified_answer``, never a guess. Its terms
are weighed by what they say about a topic in the library (``ToolsStore.search_passages``), so a
passage sharing only ordinary words with it ("how long does grief last") does not answer it, a
question on something the library never mentions ("bipolar", "antidepressants") is not answered
from the rest of its words, and an everyday word the library never uses ("how much sleep...")
does not count against one it covers. Words that only frame a question ("what does the research
say about...") are not counted as its terms, and nor are the places it names: a passage on a
service of one country (its ``jurisdiction``) answers only questions that name no other.
"""

from __future__ import annotations

import logging
import re
from typing import Final

import psycopg

from opencouch.contracts.care import Citation, GroundedLookupOutput
from opencouch.runtime.postgres import POSTGRES_OUTAGES
from opencouch.tools.places import gazetteer, tokenize
from opencouch.tools.store import PassageHit, ToolsStore

log = logging.getLogger(__name__)

MIN_COVERAGE: Final = 0.5
"""At least half of the question's topic weight must be in a passage for it to answer."""
MIN_RANK: Final = 0.05
MAX_PASSAGES: Final = 2
_SEARCHED: Final = MAX_PASSAGES + 3
"""Passages asked of the search: some may hold only in a country the question is not about."""

ANSWERED: Final = (
    "Answer from these passages only, in your own spoken words, and say where it comes from "
    "(for example 'the NHS says...'). Add no facts, figures or advice that are not in them, and "
    "say that this is general information, not a diagnosis. If they do not answer the question "
    "fully, say so."
)
NO_ANSWER: Final = (
    "There is no verified source for this in our library, so do not answer it from memory and "
    "do not guess. Say plainly that you cannot give a checked answer to that, and offer to talk "
    "it through, or suggest asking a doctor or another qualified professional."
)
UNAVAILABLE: Final = (
    "The verified library cannot be reached right now. Do not answer the factual question from "
    "memory; say you cannot check it at the moment, and offer to help in another way."
)
FAILED: Final = (
    "The verified lookup failed. Do not answer the factual question from memory; say you cannot "
    "check it right now, and offer to help in another way."
)

# Words that frame a question rather than name its topic ("what does the research say about
# sleep", "the current official guidance on grief", "is it normal to..."). They are taken out
# before the search, so the passages are judged on the topic; a question of nothing else is
# searched as it is.
_FRAMING: Final = re.compile(
    r"\b(?:the )?(?:latest |current |newest |up to date )?(?:official |scientific |medical )?"
    r"(?:research(?:ers)?|evidence|stud(?:y|ies)|science|guidance|guidelines?|advice|"
    r"recommendations?)(?: (?:say|says|said|show|shows|suggest|suggests|tell us))?\b"
    r"|\b(?:experts?|doctors?|scientists?) (?:say|recommend|advise)\b"
    r"|\b(?:is it|is that|is this|is it really) (?:normal|common|usual|okay|ok)"
    r"(?: to| that| for)?\b",
    re.IGNORECASE,
)


def topic_of(query: str) -> str:
    """``query`` without the words that only frame it as a question for the evidence."""
    topic = " ".join(_FRAMING.sub(" ", query).split())
    return topic if re.search(r"\w", topic) else query


def places_asked_about(query: str) -> tuple[str, frozenset[str]]:
    """``query`` without the countries and states it names, and their codes ("is therapy free
    in Texas": "is therapy free in", {"US-TX"}; "in the UK": {"GB"}). Cities are left alone:
    many share a name with an everyday word."""
    tokens = tokenize(query)
    named = [
        mention
        for mention in gazetteer().mentions(tokens)
        if mention.kind in ("country", "subdivision") and mention.region is not None
    ]
    if not named:
        return query, frozenset()
    inside = {index for mention in named for index in range(mention.start, mention.end)}
    rest = " ".join(token.original for index, token in enumerate(tokens) if index not in inside)
    places = frozenset(
        mention.region.subdivision or mention.region.country
        for mention in named
        if mention.region is not None
    )
    return (rest if re.search(r"\w", rest) else query), places


class GroundedLookup:
    """Answers factual questions from the corpus in Postgres, or declines to."""

    def __init__(self, store: ToolsStore) -> None:
        self._store = store

    async def answer(self, query: str) -> GroundedLookupOutput:
        """The verified answer to ``query``, ``no_verified_answer``, or why the search failed."""
        asked, places = places_asked_about(query)
        try:
            hits = await self._store.search_passages(topic_of(asked), limit=_SEARCHED)
        except POSTGRES_OUTAGES as error:
            log.warning("corpus unreachable", extra={"error": type(error).__name__})
            return GroundedLookupOutput(status="search_unavailable", guidance=UNAVAILABLE)
        except psycopg.Error as error:
            log.error("corpus search failed", extra={"error": type(error).__name__})
            return GroundedLookupOutput(status="search_failed", guidance=FAILED)
        relevant = [hit for hit in hits if _relevant(hit) and _holds_in(hit, places)]
        relevant = relevant[:MAX_PASSAGES]
        if not relevant:
            return GroundedLookupOutput(status="no_verified_answer", guidance=NO_ANSWER)
        return GroundedLookupOutput(
            status="answered",
            answer=" ".join(hit.summary for hit in relevant),
            citations=[
                Citation(
                    passage_id=hit.passage_id,
                    title=hit.title,
                    publisher=hit.publisher,
                    url=hit.url,
                    text=hit.summary,
                )
                for hit in relevant
            ],
            guidance=ANSWERED,
        )


def _holds_in(hit: PassageHit, places: frozenset[str]) -> bool:
    """Whether the passage holds where the question asks about (anywhere, if it names none).

    A passage of a country holds for the country and any part of it; one of a part of a
    country ("GB-ENG") for that part, or for the country named as a whole with no other part
    of it ("the UK": the NHS page on England, which says it is England's)."""
    where = hit.jurisdiction
    if where is None or not places:
        return True
    country = where[:2]
    if "-" not in where:
        return any(place[:2] == country for place in places)
    parts = {place for place in places if place.startswith(f"{country}-")}
    return where in parts or (country in places and not parts)


def _relevant(hit: PassageHit) -> bool:
    return hit.coverage >= MIN_COVERAGE and hit.rank >= MIN_RANK
