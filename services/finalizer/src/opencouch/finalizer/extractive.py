"""The offline summariser: an arc extracted from the user's own words by fixed rules.

It understands nothing, and says so by what it is (``method="extractive"``) and by how it
writes: counts, matched themes, and the user's own sentence quoted. Themes come from a
lexicon, moods from the first and last substantive user turns, open loops from questions
nobody answered, resolved threads from next steps the user named. Deterministic: the same
turns always give the same arc.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from opencouch.contracts.voice_api import TurnOutcome
from opencouch.finalizer.arc import (
    ArcDraft,
    SessionArc,
    SpokenTurn,
    clip_words,
    ending,
    is_substantive,
    settle,
    split_sentences,
)


def _lexicon(entries: dict[str, str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """``label -> "word prefix* two words ..."`` (comma-separated) as whole-word patterns."""
    compiled = []
    for label, words in entries.items():
        alternatives = []
        for term in (t.strip() for t in words.split(",")):
            escaped = r"\s+".join(re.escape(part) for part in term.rstrip("*").split())
            alternatives.append(escaped + (r"\w*" if term.endswith("*") else ""))
        pattern = re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)
        compiled.append((label, pattern))
    return tuple(compiled)


THEMES: Final = _lexicon(
    {
        "work": "work, working, job*, boss*, manager*, colleague*, coworker*, deadline*, "
        "office, shift, shifts, night shift*, career*, promotion*, fired, laid off, interview*, workload",
        "sleep": "sleep, sleeps, sleeping, sleepless*, slept, insomnia, awake, nightmare*, bedtime, can't rest, exhausted, tired",
        "anxiety": "anxi*, panic*, worr*, nervous*, on edge, overthink*, dread, dreads, dreading, "
        "dreaded, scared, afraid",
        "low mood": "depress*, hopeless*, empty, numb, miserable, sad, sadness, crying, cried, "
        "down lately, feeling low",
        "stress": "stress*, overwhelm*, pressure*, burnout, burned out, burnt out, too much",
        "relationships": "partner*, boyfriend*, girlfriend*, husband*, wife, marriage, "
        "divorce*, breakup*, broke up, dating, relationship*, ex",
        "family": "family, families, mum, mums, mummy, mom, moms, mommy, mother, mothers, "
        "dad, dads, daddy, father, fathers, parent*, sister*, "
        "brother*, sibling*, son, daughter*, kids, children, grandm*, grandp*",
        "loneliness": "lonel*, alone, isolat*, no friends, left out",
        "friendship": "friend*, friendship*",
        "grief and loss": "grief, griev*, died, death, funeral*, passed away, miss him, "
        "miss her, bereave*",
        "self-worth": "worthless*, failure*, useless, not good enough, hate myself, "
        "confidence, self-esteem, ashamed, shame",
        "health": "health*, illness*, ill, sick, sickness, pain, pains, painful, doctor*, diagnos*, "
        "hospital*, medication*",
        "money": "money, debt*, rent, bills, afford*, financ*, paycheck*, salary",
        "study": "exam, exams, examination*, school*, university, college, studying, study, "
        "homework, grades, "
        "thesis, class",
        "anger": "angry, anger, furious, rage, irritat*, annoyed, frustrat*, resent*",
        "safety": "suicid*, self-harm, self harm, hurt myself, kill myself, end it all, "
        "end my life, don't want to be here, want to die",
    }
)

MOODS: Final = _lexicon(
    {
        "anxious": "anxi*, nervous*, worried, worrying, panick*, on edge, scared, afraid, "
        "frightened, tense",
        "low": "sad, depressed, hopeless, empty, miserable, numb, feeling down, feel down, "
        "felt down, so down, feeling low, feel low, felt low",
        "overwhelmed": "overwhelm*, too much, swamped, drowning",
        "stressed": "stress*",
        "angry": "angry, furious, annoyed, irritated, frustrat*",
        "tired": "tired, exhausted, drained, worn out, knackered",
        "lonely": "lonely, alone, isolated",
        "hopeful": "hopeful, optimistic, looking forward",
        "calmer": "calm*, relaxed, settled, peaceful, better, relieved, lighter",
        "grateful": "thank*, grateful, appreciat*",
        "okay": "okay, fine, alright, not bad",
    }
)

# A feeling said in the negative: "not", "never", "no" or any "n't" ("haven't", "wouldn't"),
# up to three words before it within its clause ("I'm not feeling too anxious", "I don't think
# I'm stressed"); a comma or a conjunction ends the reach ("I don't know, I'm anxious", "I
# haven't slept and I'm anxious" are anxious).
_NEGATION: Final = re.compile(
    r"(?:\b(?:not|never|no)|n't|n\u2019t)[ ]+"
    r"(?:(?!(?:and|but|so|because|or|yet|while)\b)[\w'\u2019]+[ ]+){0,3}$",
    re.IGNORECASE,
)
# ...unless the negative says how much: "I can't stop feeling anxious", "I've never been so
# stressed", "I couldn't be more anxious", "no wonder I'm stressed".
_INTENSIFIED: Final = re.compile(
    r"\b(?:can(?:no|'|\u2019)?t|could(?:n't|n\u2019t| not)) (?:stop|help)\b"
    r"|\bnever (?:been|felt|be) (?:so|this|more)\b"
    r"|\b(?:could(?:n't|n\u2019t| not)|can(?:no|'|\u2019)?t) (?:be|feel|get) (?:more|any more)\b"
    r"|\bno wonder\b|\bnot (?:just|only)\b",
    re.IGNORECASE,
)
_FEELINGS: Final = frozenset({"anxiety", "low mood", "stress", "loneliness", "anger"})
"""Themes that are feelings: said in the negative, not talked about."""
_NEXT_STEP: Final = re.compile(
    r"\b(?:i(?:'ll| will| can| am going to|'m going to| plan to)"
    r"\s+(?:try|call|talk|ask|text|write|go|do|start|book|make|take|tell|reach)"
    r"|i(?:'ve| have) decided|that (?:helps|helped|makes sense)|good idea)\b",
    re.IGNORECASE,
)
_THANKS: Final = re.compile(
    r"\b(?:thank\w*|that helps|helpful|makes sense|good idea|i'll try|i will try|okay)\b",
    re.IGNORECASE,
)
MAX_QUOTE_CHARS: Final = 180


@dataclass(frozen=True)
class _Question:
    text: str
    turn: int
    answered: bool


class ExtractiveSummariser:
    """Arcs from fixed rules over the user's words: no model, no network, deterministic."""

    async def summarise(self, turns: Sequence[SpokenTurn], *, owner_digest: str) -> SessionArc:
        """The extracted arc of ``turns`` (the owner plays no part)."""
        return extract_arc(turns)


def extract_arc(turns: Sequence[SpokenTurn]) -> SessionArc:
    """The arc of ``turns``, extracted by rule (synchronous: it is pure computation)."""
    said = [turn for turn in turns if is_substantive(turn.user_text)] or list(turns)
    themes = _themes(turns)
    opened = _mood(said[0].user_text) if said else None
    closed = _mood(said[-1].user_text) if len(said) > 1 else None
    questions = _user_questions(turns)
    open_loops = [q.text for q in questions if not q.answered]
    if turns and turns[-1].outcome is TurnOutcome.COMPLETED:
        # The companion's last question, which the session ended before the user answered.
        asked = [s for s in split_sentences(turns[-1].assistant_text) if ending(s) == "?"]
        if asked:
            open_loops.append(asked[-1])
    resolved = [q.text for q in questions if q.answered and _acknowledged(turns, q.turn)]
    resolved += _next_steps(turns)
    draft = ArcDraft(
        summary=_summary(turns, said, themes, opened, closed, len(open_loops)),
        themes=list(themes),
        mood_opened=opened,
        mood_closed=closed,
        open_loops=open_loops,
        resolved_threads=resolved,
    )
    arc = settle(draft, "extractive")
    assert arc is not None  # the summary above always has its first sentence
    return arc


def _themes(turns: Sequence[SpokenTurn]) -> list[str]:
    """Lexicon themes by how many user turns name them, then by who came first."""
    score: dict[str, tuple[int, int, int]] = {}
    for index, turn in enumerate(turns):
        for label, pattern in THEMES:
            hits = sum(
                1
                for match in pattern.finditer(turn.user_text)
                if label not in _FEELINGS or not _negated(turn.user_text, match.start())
            )
            if hits:
                turns_named, total, first = score.get(label, (0, 0, index))
                score[label] = (turns_named + 1, total + hits, first)
    ranked = sorted(score.items(), key=lambda item: (-item[1][0], -item[1][1], item[1][2]))
    return [label for label, _ in ranked[:3]]


def _mood(text: str) -> str | None:
    """Up to two mood words the user said of themselves, in the order said; None if none."""
    found: list[tuple[int, str]] = []
    for label, pattern in MOODS:
        for match in pattern.finditer(text):
            if not _negated(text, match.start()):
                found.append((match.start(), label))
                break
    labels = [label for _, label in sorted(found)][:2]
    return " and ".join(labels) if labels else None


def _negated(text: str, at: int) -> bool:
    """Whether the word at ``at`` is said in the negative (not merely intensified)."""
    negation = _NEGATION.search(text[:at])
    if negation is None:
        return False
    return _INTENSIFIED.search(text[max(negation.start() - 8, 0) : at]) is None


def _user_questions(turns: Sequence[SpokenTurn]) -> list[_Question]:
    """Each question the user asked, and whether the companion's reply answered it.

    Answered: the turn completed and the reply says something besides asking back.
    """
    questions = []
    for index, turn in enumerate(turns):
        asked = [s for s in split_sentences(turn.user_text) if ending(s) == "?"]
        if not asked:
            continue
        reply = split_sentences(turn.assistant_text)
        answered = turn.outcome is TurnOutcome.COMPLETED and any(
            ending(sentence) != "?" for sentence in reply
        )
        questions += [_Question(clip_words(q, 160), index, answered) for q in asked]
    return questions


def _acknowledged(turns: Sequence[SpokenTurn], index: int) -> bool:
    """Whether the user's next turn took the answer up (thanks, that helps, I'll try)."""
    return index + 1 < len(turns) and bool(_THANKS.search(turns[index + 1].user_text))


def _next_steps(turns: Sequence[SpokenTurn]) -> list[str]:
    """Sentences where the user named a next step or said something settled."""
    return [
        clip_words(sentence, 160)
        for turn in turns
        for sentence in split_sentences(turn.user_text)
        if _NEXT_STEP.search(sentence) and ending(sentence) != "?"
    ]


def _summary(
    turns: Sequence[SpokenTurn],
    said: Sequence[SpokenTurn],
    themes: Sequence[str],
    opened: str | None,
    closed: str | None,
    open_count: int,
) -> str:
    minutes = _minutes(turns)
    length = _counted(len(turns), "turn") + (
        f" over about {'a minute' if minutes == 1 else f'{minutes} minutes'}" if minutes else ""
    )
    about = f"mostly about {_listed(themes)}" if themes else "about what was on their mind"
    sentences = [f"In {length}, the user talked {about}."]
    if opened and closed:
        sentences.append(f"They opened {opened} and closed {closed}.")
    elif opened:
        sentences.append(f"They opened {opened}.")
    quote = _key_sentence(said)
    if quote:
        sentences.append(f"In their words: {_quoted(quote)}")
    if open_count:
        sentences.append(
            "One question was left open." if open_count == 1 else
            f"{open_count} questions were left open."
        )  # fmt: skip
    return " ".join(sentences)


def _minutes(turns: Sequence[SpokenTurn]) -> int:
    if len(turns) < 2:
        return 0
    return round((turns[-1].spoken_at - turns[0].spoken_at).total_seconds() / 60)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def _key_sentence(said: Sequence[SpokenTurn]) -> str | None:
    """The user's sentence naming most themes (the earliest of equals), cut to fit."""
    best, best_score = None, 0
    for turn in said:
        for sentence in split_sentences(turn.user_text):
            score = sum(len(pattern.findall(sentence)) for _, pattern in THEMES)
            if score > best_score and len(sentence.split()) >= 4:
                best, best_score = sentence, score
    if best is None:
        return None
    return clip_words(best.replace('"', "'"), MAX_QUOTE_CHARS)


def _quoted(sentence: str) -> str:
    """The sentence in quotes, ending the summary's sentence however the user's ended."""
    return f'"{sentence}"' + ("" if ending(sentence) in (".", "!", "?") else ".")
