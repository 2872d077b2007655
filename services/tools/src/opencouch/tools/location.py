"""Where the user is, from nothing but their own words in this conversation.

Never from IP, timezone, accent or anything the assistant said. Of the places a user names,
only the one they put themselves in now counts: "I'm in Sydney, not in London anymore" is
Sydney; "my sister lives in Canada" and a place inside quoted speech are nobody's location;
"I'm from the UK but I live in Dublin now" is Dublin. Where they only said where they are from,
that is used, as the next best thing. A refusal to say is respected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from opencouch.contracts.care import LocationStatus
from opencouch.contracts.common import TranscriptLine
from opencouch.tools.places import (
    PUNCTUATION,
    Gazetteer,
    Mention,
    Region,
    Token,
    gazetteer,
    tokenize,
)

Frame = Literal["current", "origin", "none"]


@dataclass(frozen=True)
class UserLocation:
    """What the user's words say about where they are."""

    status: LocationStatus
    region: Region | None = None
    origin_only: bool = False
    """The user said where they are from, never where they are now."""

    @property
    def label(self) -> str | None:
        """A readable name of the region, if one was provided."""
        return self.region.label if self.region else None

    @property
    def in_sentence(self) -> str | None:
        """The region's name as a sentence says it ("the United Kingdom"), if one was given."""
        return self.region.in_sentence if self.region else None


# Quoted speech is someone else's words (or a song's): "she said "I'm in Perth"" is not the
# user's location. A single quote opens a quote only after a space, so "I'm" stays a word.
_QUOTED: Final = re.compile(
    r"\"[^\"]*\"|\u201c[^\u201d]*\u201d|(?:(?<=\s)|^)['\u2018][^'\u2018\u2019]+['\u2019](?=[\s,.!?;:]|$)"
)
# Reported speech without quotes: "my friend said she's in Ohio" ends at the sentence's end.
_REPORTED: Final = re.compile(
    r"\b(?:he|she|they|my \w+|his \w+|her \w+|their \w+|someone|somebody|people)"
    r" (?:said|says|told me|tells me|wrote|writes|texted|asked|asks|thinks|thought)\b[^.!?;]*",
    re.IGNORECASE,
)

_CLAUSE_WORDS: Final = frozenset(
    {"but", "though", "although", "however", "whereas", "because", "cause", "and", "so", "while"}
)
_FIRST_PERSON: Final = frozenset(
    {"i", "i'm", "im", "i've", "ive", "i'd", "i'll", "we", "we're", "we've", "we'd", "we'll"}
)
_THIRD_PERSON: Final = frozenset(
    {"he", "she", "they", "he's", "she's", "they're", "hes", "shes", "theyre", "you", "you're",
     "youre", "someone", "somebody", "everyone", "people"}
)  # fmt: skip
_THIRD_PERSON_VERBS: Final = frozenset(
    {"lives", "works", "stays", "studies", "resides", "is", "was", "has", "comes", "moved"}
)
# "it is Texas", "my home is in Ohio": a verb whose subject is not another person.
_NEUTRAL_SUBJECTS: Final = frozenset(
    {"it", "that", "this", "there", "where", "here", "am", "home", "location", "address",
     "place", "house", "flat", "apartment", "base", "i", "we"}
)  # fmt: skip
_HOME_WORDS: Final = frozenset(
    {"home", "location", "address", "place", "house", "flat", "apartment", "base"}
)
_POSSESSIVES: Final = frozenset({"my", "our", "his", "her", "their", "your"})
_NEGATORS: Final = frozenset(
    {"not", "no", "never", "don't", "dont", "didn't", "didnt", "isn't", "aren't", "wasn't",
     "won't", "can't", "cannot", "haven't", "hasn't", "nowhere"}
)  # fmt: skip
_NO_LONGER: Final = frozenset({"anymore", "longer"})
_AT_PREPOSITIONS: Final = frozenset(
    {"in", "at", "near", "around", "outside", "inside", "across", "on", "throughout"}
)
_OTHER_PREPOSITIONS: Final = frozenset(
    {"of", "about", "for", "with", "like", "than", "by", "into", "towards", "toward", "via",
     "through", "over", "under", "between"}
)  # fmt: skip
_PAST: Final = frozenset(
    {"was", "were", "used", "lived", "grew", "born", "raised", "visited", "stayed", "went",
     "spent", "studied", "worked", "had", "previously", "originally", "once", "last", "ago",
     "formerly", "left"}
)  # fmt: skip
_FUTURE: Final = frozenset(
    {"going", "gonna", "will", "i'll", "we'll", "visiting", "visit", "travel", "travelling",
     "traveling", "flying", "fly", "headed", "heading", "planning", "plan", "want", "wanna",
     "hope", "hoping", "might", "could", "would", "should", "next", "moving", "move", "trip",
     "holiday", "vacation", "dream", "dreaming", "wish", "if", "maybe"}
)  # fmt: skip
_MOVED: Final = frozenset({"moved", "relocated", "emigrated", "immigrated", "transferred"})
_CALLING: Final = frozenset(
    {"calling", "writing", "talking", "speaking", "texting", "messaging", "phoning", "ringing"}
)
# Words that may stand around a place in a bare answer: "Um, Texas", "In Ohio, currently".
_FILLERS: Final = frozenset(
    {"yeah", "yes", "yep", "yup", "um", "uh", "erm", "er", "hmm", "well", "so", "oh", "ok",
     "okay", "it's", "its", "it", "is", "just", "currently", "now", "right", "here", "the",
     "actually", "guess", "think", "mean", "like", "honestly", "basically", "still", "probably",
     "somewhere", "sure", "live", "living", "based", "located", "staying", "back", "over",
     "out", "up", "down", "home", "sunny", "rainy", "beautiful", "lovely", "good", "old",
     "northern", "southern", "western", "eastern", "central", "rural", "downtown", "upstate",
     "greater", "outer", "inner", "north", "south", "east", "west", "of", "part", "suburbs",
     "outskirts", "middle", "a", "small", "town", "city", "village", "near", "me", "from"}
)  # fmt: skip

# Refusals that name what is refused ("where I am") count whenever they are said; a bare
# "I'd rather not say" counts only as the answer to a question about where the user is.
_REFUSAL_OF_LOCATION: Final = re.compile(
    r"\b(?:(?:rather|prefer) not|(?:do not|don't|dont|won't|will not|can't|cannot|not going to|"
    r"not gonna|not comfortable|uncomfortable)(?: want to| wanna)?)"
    r" (?:to )?(?:say|tell|share|give|disclose|saying|telling|sharing|giving|reveal)"
    r"(?: you| that)?(?: exactly)? (?:where|my location|my country|which country|what country|"
    r"my city|what city|which city|the city|my address|my state|what state|my whereabouts)"
    r"|\bnot (?:telling|saying|sharing)(?: you)? (?:where|my location)"
    r"|\bkeep (?:my location|where i am|where i live)(?: private| to myself| secret)"
    r"|\bnone of your business where\b"
)
_BARE_REFUSAL: Final = re.compile(
    r"^\W*(?:(?:i'?d|i would) rather not(?: say| tell| share)?|(?:i'?d|i would) prefer not to"
    r"(?: say| tell| share)?|rather not(?: say)?|prefer not to say|not saying|i'?m not saying|"
    r"i won't say|i'?m not telling(?: you)?|no comment|pass|that'?s private|it'?s private|"
    r"none of your business|i don'?t want to (?:say|tell you|share that)|"
    r"(?:i'?d|i would) rather keep (?:that|it) (?:private|to myself))\b"
)
_ASKED_WHERE: Final = re.compile(
    r"\b(?:where|which country|what country|what city|which city|what state|location|located|"
    r"region|whereabouts)\b",
    re.IGNORECASE,
)


def locate_user(current_message: str, transcript: Sequence[TranscriptLine]) -> UserLocation:
    """Where the user said they are now: their newest statement of it, a refusal if that came
    later, or else where they said they are from. Assistant lines are never a source."""
    turns = _user_turns(current_message, transcript)
    places = gazetteer()
    origin: Region | None = None
    for text, asked_where in reversed(turns):
        finding = _read_turn(places, text)
        if finding.current is not None:
            return UserLocation(status="provided", region=finding.current)
        if _refuses(text, asked_where):
            return UserLocation(status="refused")
        origin = origin or finding.origin
    if origin is not None:
        return UserLocation(status="provided", region=origin, origin_only=True)
    return UserLocation(status="not_provided")


def _user_turns(
    current_message: str, transcript: Sequence[TranscriptLine]
) -> list[tuple[str, bool]]:
    """Each user line, oldest first, with whether the assistant had just asked where they are."""
    turns: list[tuple[str, bool]] = []
    asked_where = False
    for line in transcript:
        if line.role == "assistant":
            asked_where = bool(_ASKED_WHERE.search(line.text))
            continue
        turns.append((line.text, asked_where))
        asked_where = False
    if current_message.strip() and (not turns or turns[-1][0] != current_message):
        turns.append((current_message, asked_where))
    return turns


@dataclass(frozen=True)
class _Finding:
    current: Region | None = None
    origin: Region | None = None


def _read_turn(places: Gazetteer, text: str) -> _Finding:
    text = _REPORTED.sub(" ", _QUOTED.sub(" ", text))
    tokens = tokenize(text)
    mentions = places.mentions(tokens)
    if not mentions:
        return _Finding()
    current: Region | None = None
    origin: Region | None = None
    for mention in mentions:
        region = mention.region
        if region is None:
            continue
        frame = _frame(tokens, mention, mentions)
        if frame == "current":
            current = region  # the last one said in this turn wins: "…, well, Seattle actually"
        elif frame == "origin" and origin is None:
            origin = region
    return _Finding(current, origin)


def _frame(tokens: Sequence[Token], mention: Mention, mentions: Sequence[Mention]) -> Frame:
    """Whether ``mention`` is where the speaker is now, where they come from, or neither."""
    start = _clause_start(tokens, mention.start, mentions)
    end = _clause_end(tokens, mention.end, mentions)
    before = _words(tokens, start, mention.start, mentions)
    # What follows belongs to this place only up to the next one: in "I'm in Sydney not in
    # London anymore", "anymore" is London's.
    end = min([end, *(other.start for other in mentions if other.start >= mention.end)])
    after = [token.text for token in tokens[mention.end : end]]
    if any(word in _NO_LONGER for word in after):
        return "none"
    speaker, at = _speaker(before)
    if speaker == "other":
        return "none"
    verb_phrase = before[at + 1 :] if speaker == "self" else before
    if any(word in _NEGATORS for word in verb_phrase):
        return "none"
    preposition = _preposition(verb_phrase)
    if preposition is None:
        # A bare answer ("Texas.", "Um, in Ohio, I guess") or "I'm from X"-less self statement.
        if speaker == "unknown" and all(word in _FILLERS for word in verb_phrase):
            return "origin" if "from" in verb_phrase else "current"
        return "none"
    if speaker == "unknown" and not all(
        word in _FILLERS or word == preposition for word in verb_phrase
    ):
        return "none"  # "snow in Texas is wild": a place in a sentence, not an answer
    if preposition == "from":
        return "current" if any(word in _CALLING for word in verb_phrase) else "origin"
    if preposition == "to":
        if any(word in _MOVED for word in verb_phrase) and not any(
            word in _FUTURE for word in verb_phrase
        ):
            return "current"
        return "none"
    if preposition in _OTHER_PREPOSITIONS:
        return "none"
    if "back" in verb_phrase and "home" in verb_phrase and speaker != "self":
        return "origin"  # "back home in Texas we..." is where they are from
    if _have_lived(before[max(at, 0) :]):
        return "current"
    if any(word in _PAST for word in verb_phrase) or any(word in _FUTURE for word in verb_phrase):
        return "none"
    return "current"


def _clause_start(tokens: Sequence[Token], index: int, mentions: Sequence[Mention]) -> int:
    inside = _inside_mentions(mentions)
    while index > 0:
        previous = tokens[index - 1].text
        if (previous in PUNCTUATION or previous in _CLAUSE_WORDS) and index - 1 not in inside:
            return index
        index -= 1
    return 0


def _clause_end(tokens: Sequence[Token], index: int, mentions: Sequence[Mention]) -> int:
    inside = _inside_mentions(mentions)
    while index < len(tokens):
        word = tokens[index].text
        if (word in PUNCTUATION or word in _CLAUSE_WORDS) and index not in inside:
            return index
        index += 1
    return index


def _inside_mentions(mentions: Sequence[Mention]) -> set[int]:
    return {index for mention in mentions for index in range(mention.start, mention.end)}


def _words(tokens: Sequence[Token], start: int, end: int, mentions: Sequence[Mention]) -> list[str]:
    """The words of ``tokens[start:end]``, each earlier place name as one ``<place>`` word."""
    words: list[str] = []
    index = start
    starts = {mention.start: mention.end for mention in mentions}
    while index < end:
        if index in starts:
            words.append("<place>")
            index = starts[index]
            continue
        words.append(tokens[index].text)
        index += 1
    return words


def _speaker(words: Sequence[str]) -> tuple[Literal["self", "other", "unknown"], int]:
    """Who the clause before a place is about, and where that subject is in ``words``."""
    for at in range(len(words) - 1, -1, -1):
        word = words[at]
        if word in _FIRST_PERSON:
            return "self", at
        if word in _THIRD_PERSON:
            return "other", at
        if word in _HOME_WORDS and at > 0 and words[at - 1] in ("my", "our"):
            return "self", at
        if (
            word in _THIRD_PERSON_VERBS
            and at > 0
            and words[at - 1] not in _NEUTRAL_SUBJECTS
            and words[at - 1] not in _FIRST_PERSON
        ):
            return "other", at
        # "my mum's in Leeds" (she is), unless the speaker comes earlier ("I'm at my mum's").
        if (
            word.endswith("'s")
            and at > 0
            and words[at - 1] in _POSSESSIVES
            and not any(earlier in _FIRST_PERSON for earlier in words[: at - 1])
        ):
            return "other", at
    return "unknown", -1


def _preposition(words: Sequence[str]) -> str | None:
    """The preposition that governs the place: the last one, at most four words before it."""
    for word in reversed(words[-5:]):
        if word in _AT_PREPOSITIONS or word in _OTHER_PREPOSITIONS or word in ("from", "to"):
            return word
    return None


def _have_lived(words: Sequence[str]) -> bool:
    """ "I've lived in", "we have been living in": present perfect is where they are now."""
    joined = " ".join(words)
    return bool(re.search(r"(?:'ve|\bhave|\bive) (?:lived|been living|been based|been)\b", joined))


def _refuses(text: str, asked_where: bool) -> bool:
    normalised = _QUOTED.sub(" ", text).replace("\u2019", "'").lower()
    if _REFUSAL_OF_LOCATION.search(normalised):
        return True
    return asked_where and bool(_BARE_REFUSAL.search(normalised))
