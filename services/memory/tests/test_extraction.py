"""The deterministic extractor keeps lasting facts a user states about themselves, and nothing
else: no questions, negations, hypotheticals, other people's words, or judgements of oneself.
"""

from __future__ import annotations

import pytest

from opencouch.memory.extraction import PhraseExtractor


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("My sister is called Ana.", ["My sister is called Ana."]),
        ("my sister is called ana and she lives far away", ["My sister is called Ana."]),
        ("I work nights, so I sleep in the day.", ["I work nights."]),
        ("I'm a nurse.", ["I am a nurse."]),
        ("I work as a bus driver and it's tiring", ["I work as a bus driver."]),
        ("I live in new york with my partner", ["I live in New York."]),
        ("I have two kids and a dog.", ["I have two kids."]),
        ("My name is Sam. I'm from Leeds.", ["My name is Sam.", "I am from Leeds."]),
        ("my best friend is called Jo Smith.", ["My best friend is called Jo Smith."]),
        ("I'm allergic to peanuts.", ["I am allergic to peanuts."]),
        ("I am divorced", ["I am divorced."]),
        ("My sister is called Ana. my sister is called Ana!", ["My sister is called Ana."]),
        # Asked to remember it, the statement is the fact, question mark or not.
        ("Can you remember that my sister's name is Ana?", ["My sister is called Ana."]),
        ("Please remember I work nights.", ["I work nights."]),
        ("Oh, and don't forget that I'm a nurse!", ["I am a nurse."]),
        ("Could you please keep in mind that I'm vegan?", ["I am vegan."]),
        ("Do you remember that my dog is called Rex?", ["My dog is called Rex."]),
        # What they like, in their words, each liking of a sentence once.
        ("I like jazz.", ["I like jazz."]),
        ("I love gardening and I enjoy long walks.", ["I love gardening.", "I enjoy long walks."]),
        ("I really like playing the guitar", ["I like playing the guitar."]),
        ("I like jazz because it calms me", ["I like jazz."]),
        ("I like Taylor Swift", ["I like Taylor Swift."]),
        ("I love my kids so much", ["I love my kids."]),
        ("I like Italy", ["I like Italy."]),
        ("Please remember that I like tea.", ["I like tea."]),
    ],
)
def test_facts_stated_about_oneself_are_kept_in_the_users_words(said: str, kept: list[str]) -> None:
    assert [fact.text for fact in PhraseExtractor().extract(said)] == kept


@pytest.mark.parametrize(
    "said",
    [
        "I'm a failure.",
        "I'm so tired of everything",
        "I do not work nights.",
        "Do I work nights?",
        "If my sister was called Ana, things would be different",
        "I used to work nights",
        "she said my brother is called Tom",
        "I have a headache",
        "call me um whenever",
        "I wish I lived in Paris",
        "Can you remember when my sister was called Ana?",
        "Do you remember what I do for work?",
        "Please remember that I don't work nights.",
        # "like" as a filler, likings about the conversation or someone in it, a liking past
        # or hoped for, and harm: none of it is a fact to keep.
        "I like totally forgot",
        "I like, um, need help",
        "I like honestly no idea",
        "I like you",
        "I really like talking to you",
        "I like that idea",
        "I like the idea",
        "I like it when you talk",
        "I like to think so",
        "I don't like crowds",
        "I used to love painting",
        "Do you like jazz?",
        "I enjoy nothing anymore",
        "I like being alone",
        "I love hurting myself",
        "I like cutting",
        "I really enjoy drinking",
    ],
)
def test_questions_negations_hypotheticals_and_feelings_are_not_facts(said: str) -> None:
    assert PhraseExtractor().extract(said) == []


def test_the_key_ignores_capitals_and_punctuation() -> None:
    first = PhraseExtractor().extract("My sister is called Ana.")[0]
    second = PhraseExtractor().extract("MY SISTER is called ANA")[0]
    assert first.key == second.key == "my sister is called ana"
