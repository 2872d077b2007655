"""Memory candidates: lasting facts a user states about themselves, found in one turn.

The deterministic extractor knows a small set of phrasings ("my sister is called Ana", "I work
nights", "I'm a nurse", "I love gardening") and keeps the user's own first-person wording,
tidied, also when they ask for it to be remembered ("can you remember that..."). It skips other
questions, negations, hypotheticals and reported speech, and it never keeps feelings or
judgements about oneself ("I'm a failure"): those are a conversation, not a fact to remember.
Another extractor (an LLM, say) may stand behind the same ``CandidateExtractor`` interface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from opencouch.memory.intent import normalise

FACT_MAX_CHARS: Final = 200


@dataclass(frozen=True)
class FactCandidate:
    """A fact worth keeping, in the user's words, and the key that makes it one per owner."""

    text: str

    @property
    def key(self) -> str:
        """The same fact phrased with other capitals or punctuation has the same key."""
        return normalise(self.text)


class CandidateExtractor(Protocol):
    """Finds memory candidates in what the user said in one turn."""

    def extract(self, user_text: str) -> list[FactCandidate]:
        """The facts ``user_text`` states about the user, each once."""
        ...


_RELATION: Final = (
    r"(?:(?:best|older|younger|little|big|twin|step|ex|late) ?)?"
    r"(?:mother|mom|mum|father|dad|sister|brother|son|daughter|wife|husband|partner|spouse|"
    r"boyfriend|girlfriend|fianc[eé]e?|friend|grandmother|grandma|granny|grandfather|grandpa|"
    r"grandson|granddaughter|aunt|uncle|cousin|niece|nephew|baby|kid|child|roommate|"
    r"flatmate|housemate|colleague|coworker|boss|manager|therapist|counsell?or|doctor|"
    r"dog|cat|puppy|kitten|pet|horse|rabbit|bird|parrot)"
)
_NAME_WORD: Final = r"[^\W\d_][\w'-]{0,30}"
_CLAUSE_END: Final = r"(?=\s*(?:$|[.!,;:]|\b(?:and|but|so|because|who|which|with|since|now|these days|she|he|they)\b))"
_FREE: Final = r"[^\W\d_][\w '&-]{1,40}?"

_ROLES: Final = (
    "nurse|teacher|student|doctor|engineer|developer|programmer|designer|lawyer|accountant|"
    "chef|cook|driver|cashier|carer|caregiver|paramedic|firefighter|police officer|soldier|"
    "musician|artist|writer|scientist|researcher|farmer|mechanic|electrician|plumber|builder|"
    "cleaner|waiter|waitress|bartender|barista|pharmacist|therapist|social worker|manager|"
    "consultant|freelancer|translator|journalist|photographer|librarian|dentist|vet|"
    "veterinarian|midwife|surgeon|psychologist|architect|pilot|sales assistant|shop assistant|"
    "receptionist|secretary|care worker|support worker|delivery driver|truck driver|"
    "nanny|childminder|tutor|lecturer|professor|postdoc|phd student|grad student|"
    "college student|university student|high school student|med student|law student|"
    "parent|single parent|single mom|single mum|single dad|stay at home parent|"
    "stay at home mom|stay at home mum|stay at home dad|mother|mom|mum|father|dad|"
    "veteran|retiree|pensioner|carer for my \\w+"
)
_STATUSES: Final = (
    "married|divorced|separated|widowed|single|engaged|retired|pregnant|unemployed|"
    "self employed|self-employed|vegetarian|vegan|left handed|left-handed|"
    "diabetic|deaf|hard of hearing|blind|autistic|dyslexic"
)

# Words a "name" slot must not take: fillers and function words a transcript is full of.
_NOT_NAMES: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "um",
        "uh",
        "er",
        "erm",
        "like",
        "so",
        "but",
        "or",
        "because",
        "she",
        "he",
        "they",
        "it",
        "that",
        "this",
        "is",
        "was",
        "not",
        "just",
        "actually",
        "really",
        "well",
        "you",
        "i",
        "me",
        "my",
        "his",
        "her",
        "their",
        "our",
        "kind",
        "sort",
        "called",
        "named",
    ]
)
# Anything before a match that makes it not a statement about the user as they are now.
_NOT_A_STATEMENT: Final = re.compile(
    r"\b(?:if|when|whether|unless|maybe|perhaps|might|would|could|should|wish|hope|"
    r"used to|pretend|imagine|suppose|dreamt|dreamed|don't|do not|didn't|did not|never|"
    r"no longer|not|isn't|wasn't|aren't|said|says|told|thinks|thought|asked)\b",
    re.IGNORECASE,
)
_SENTENCE: Final = re.compile(r"[^.!?\n]+[.!?]?")
# A request to remember something ("Can you remember that my sister is called Ana?"): what
# follows is the user's statement, even though the sentence is asked.
_REMEMBER_THIS: Final = re.compile(
    r"^\s*(?:(?:oh|and|also|so|okay|ok),? )*(?:(?:can|could|will|would|do) you (?:please )?"
    r"|please )?(?:remember|don't forget|do not forget|keep in mind|note)(?: that|:)?\s+"
    r"(?P<fact>.+?)[?.!]?\s*$",
    re.IGNORECASE,
)


def _name(match: re.Match[str], group: str = "name") -> str | None:
    kept: list[str] = []
    for word in match.group(group).split():
        if word.lower() in _NOT_NAMES:
            break
        kept.append(word[:1].upper() + word[1:])
    return " ".join(kept) or None


def _relation_name(match: re.Match[str]) -> str | None:
    name = _name(match)
    return f"My {match.group('who').lower()} is called {name}" if name else None


def _plain(template: str, group: str = "what") -> Callable[[re.Match[str]], str | None]:
    def render(match: re.Match[str]) -> str | None:
        return template.format(match.group(group).strip().lower())

    return render


# What a user likes ("I love gardening", "I really like jazz"), only where the words after
# "like" can be nothing but a liking: "like" is also a filler ("I like totally forgot"), and
# what is liked can be the conversation ("I like that idea"), someone in it ("I like you"), or
# something no one should be reminded of as a pastime ("I like hurting myself").
_LIKING: Final = re.compile(
    rf"\bI (?:really |also |just |absolutely |do )?(?P<verb>like|love|enjoy|adore) "
    rf"(?P<what>{_FREE}){_CLAUSE_END}",
    re.IGNORECASE,
)
_LIKED_WORDS_MAX: Final = 4


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NOT_LIKED: Final = (
    # pronouns, the assistant and the talk itself
    _words(
        "it its that this these those them him her you your yours yourself me myself us we he "
        "she they everything nothing anything something someone somebody anyone everyone "
        "nobody idea ideas sound plan suggestion thought question answer way talking chatting"
    )
    # fillers, adverbs and verbs that follow a filler "like"
    | _words(
        "um uh er erm like so kind sort totally literally basically really just very much more "
        "to be being feel feeling felt am was is are were have had need needed want wanted can "
        "can't cannot could couldn't don't didn't won't will would should forgot said say went "
        "think know knew get got go going when how what where why who if because"
    )
    # harm, and what feeds it
    | _words(
        "hurt hurting harm harming cut cutting burn burning kill killing die dying dead death "
        "suicide blood bleeding pain starve starving starvation purge purging binge binging "
        "bingeing overdose pills drunk drugs high numb alone alcohol drinking booze weed "
        "smoking gambling"
    )
)


def _liking(match: re.Match[str]) -> str | None:
    what = match.group("what").strip()
    words = [word.strip("'").lower() for word in what.split()]
    if len(words) > _LIKED_WORDS_MAX or any(word in _NOT_LIKED for word in words):
        return None
    if what[:1].islower() and words[0].endswith("ly"):  # "I like honestly", not "I like Italy"
        return None
    return f"I {match.group('verb').lower()} {what}"


_PATTERNS: Final[Sequence[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]]] = [
    (
        re.compile(
            rf"\bmy (?P<who>{_RELATION})(?:'s name is| is called| is named| name is| goes by)"
            rf" (?P<name>{_NAME_WORD}(?: {_NAME_WORD})?){_CLAUSE_END}",
            re.IGNORECASE,
        ),
        _relation_name,
    ),
    (
        re.compile(
            rf"\b(?:my name is|call me|my name's) (?P<name>{_NAME_WORD}){_CLAUSE_END}",
            re.IGNORECASE,
        ),
        lambda match: f"My name is {name}" if (name := _name(match)) else None,
    ),
    (
        re.compile(
            r"\bI work (?P<what>nights|night shifts|nightshifts|days|day shifts|evenings|"
            r"weekends|early mornings|late shifts|shifts|part[- ]time|full[- ]time|"
            rf"from home|remotely|two jobs|(?:as an?|in|at|for) {_FREE}){_CLAUSE_END}",
            re.IGNORECASE,
        ),
        _plain("I work {}"),
    ),
    (
        re.compile(rf"\bI(?:'m| am) (?:an? )?(?P<what>(?:{_ROLES}))\b{_CLAUSE_END}", re.IGNORECASE),
        lambda match: _role(match.group("what")),
    ),
    (
        re.compile(rf"\bI(?:'m| am) (?P<what>{_STATUSES}){_CLAUSE_END}", re.IGNORECASE),
        _plain("I am {}"),
    ),
    (
        re.compile(
            rf"\bI (?:study|am studying|'m studying|major in|am majoring in) (?P<what>{_FREE})"
            rf"{_CLAUSE_END}",
            re.IGNORECASE,
        ),
        _plain("I study {}"),
    ),
    (
        re.compile(
            rf"\bI live (?P<what>in {_FREE}|with (?:my )?{_RELATION}s?(?: and (?:my )?"
            rf"{_RELATION}s?)?|alone|on my own|by myself){_CLAUSE_END}",
            re.IGNORECASE,
        ),
        lambda match: "I live " + _keep_place_case(match.group("what")),
    ),
    (
        re.compile(rf"\bI(?:'m| am) from (?P<what>{_FREE}){_CLAUSE_END}", re.IGNORECASE),
        lambda match: "I am from " + _title(match.group("what")),
    ),
    (
        re.compile(
            r"\bI(?:'ve got| have got| have) (?P<what>(?:an?|one|two|three|four|five|six|\d) "
            rf"(?:{_RELATION}|kids|children|sons|daughters|sisters|brothers|dogs|cats|pets))"
            rf"{_CLAUSE_END}",
            re.IGNORECASE,
        ),
        _plain("I have {}"),
    ),
    (
        re.compile(rf"\bI(?:'m| am) allergic to (?P<what>{_FREE}){_CLAUSE_END}", re.IGNORECASE),
        _plain("I am allergic to {}"),
    ),
    (
        re.compile(
            r"\bmy pronouns are (?P<what>(?:she|he|they|xe|ze)(?:/| and )\w+(?:/\w+)?)",
            re.IGNORECASE,
        ),
        _plain("My pronouns are {}"),
    ),
    (_LIKING, _liking),
]


def _role(role: str) -> str:
    role = role.strip().lower()
    article = "an" if role[:1] in "aeiou" else "a"
    return f"I am {article} {role}"


def _title(place: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in place.strip().split())


def _keep_place_case(what: str) -> str:
    what = what.strip()
    if what.lower().startswith("in "):
        return "in " + _title(what[3:])
    return what.lower()


class PhraseExtractor:
    """The deterministic extractor: known phrasings only, the user's words kept."""

    def extract(self, user_text: str) -> list[FactCandidate]:
        """Facts stated in ``user_text``, in order, each once."""
        found: dict[str, FactCandidate] = {}
        for said in _SENTENCE.findall(user_text):
            asked_to_remember = _REMEMBER_THIS.match(said)
            if asked_to_remember:
                sentence = asked_to_remember.group("fact")
            elif said.rstrip().endswith("?"):
                continue
            else:
                sentence = said
            for pattern, render in _PATTERNS:
                for match in pattern.finditer(sentence):
                    if _NOT_A_STATEMENT.search(sentence[: match.start()] + match.group(0)):
                        continue
                    text = render(match)
                    if not text:
                        continue
                    candidate = FactCandidate(_sentence_case(text)[:FACT_MAX_CHARS])
                    found.setdefault(candidate.key, candidate)
        return list(found.values())


def _sentence_case(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
