"""The session arc by rule: themes from the lexicon, moods from the first and last user turns,
open loops from questions nobody answered, next steps the user named; and its limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opencouch.contracts.voice_api import TurnOutcome
from opencouch.finalizer.arc import (
    ArcDraft,
    SpokenTurn,
    is_substantive,
    settle,
    split_sentences,
    substantive_turns,
)
from opencouch.finalizer.extractive import extract_arc

START = datetime(2025, 3, 1, 21, 0, tzinfo=UTC)


def conversation(*exchanges: tuple[str, str]) -> list[SpokenTurn]:
    return [
        SpokenTurn(user, assistant, TurnOutcome.COMPLETED, START + timedelta(minutes=3 * n))
        for n, (user, assistant) in enumerate(exchanges)
    ]


FIVE_TURNS = conversation(
    (
        "I've been really anxious about work lately, my boss keeps moving the deadline.",
        "That sounds stressful. What happens when the deadline moves?",
    ),
    (
        "I lie awake at night going over emails, so my sleep is a mess.",
        "Not sleeping makes everything heavier. What does a typical night look like?",
    ),
    (
        "Is it normal to feel this wiped out after only a few bad nights of sleep?",
        "Yes, a few short nights can leave people drained and foggy.",
    ),
    (
        "Thanks, that helps. I think I'll try to stop checking email after nine.",
        "That's a clear, kind boundary for yourself.",
    ),
    (
        "I feel a bit calmer now, and hopeful about tomorrow.",
        "I'm glad. What would make tomorrow morning easier?",
    ),
)


def test_five_substantive_turns_make_a_full_arc_by_rule() -> None:
    arc = extract_arc(FIVE_TURNS)
    assert arc.method == "extractive"
    # Sleep came up in two turns, work in one (three times), anxiety in one (once).
    assert arc.themes == ("sleep", "work", "anxiety")
    assert arc.mood_opened == "anxious"
    assert arc.mood_closed == "calmer and hopeful"
    assert 2 <= len(split_sentences(arc.summary)) <= 4
    assert len(arc.summary) <= 600
    assert arc.summary.startswith(
        "In 5 turns over about 12 minutes, the user talked mostly about sleep, work and anxiety."
    )
    assert "They opened anxious and closed calmer and hopeful." in arc.summary
    assert "my boss keeps moving the deadline" in arc.summary  # the user's own sentence
    # The companion's last question was never answered: the session ended on it.
    assert arc.open_loops == ("What would make tomorrow morning easier?",)
    # Answered, and taken up in the next turn; and a next step the user named.
    assert arc.resolved_threads == (
        "Is it normal to feel this wiped out after only a few bad nights of sleep?",
        "Thanks, that helps.",
        "I think I'll try to stop checking email after nine.",
    )
    assert extract_arc(FIVE_TURNS) == arc  # deterministic


def test_a_question_answered_only_with_a_question_or_cut_off_stays_open() -> None:
    turns = conversation(
        ("Why do I always freeze up when my sister calls?", "What do you notice when it happens?"),
        ("My chest gets tight and I can't think straight at all.", "That sounds hard."),
        ("Should I tell my family how I feel about it?", ""),
    )
    turns[2] = SpokenTurn(
        turns[2].user_text, "", TurnOutcome.CONNECTION_INTERRUPTED, turns[2].spoken_at
    )
    arc = extract_arc(turns)
    assert arc.open_loops == (
        "Why do I always freeze up when my sister calls?",
        "Should I tell my family how I feel about it?",
    )
    assert arc.themes[0] == "family"
    assert "2 questions were left open." in arc.summary


def test_moods_are_what_the_user_says_of_themselves() -> None:
    turns = conversation(
        ("I've been feeling down since the move, honestly.", "I'm sorry."),
        ("The new flat is small and the street is loud at night.", "That's a lot."),
        ("I'll write the worries down before bed and see.", "Good plan."),
    )
    arc = extract_arc(turns)
    assert arc.mood_opened == "low"
    assert arc.mood_closed is None  # "write the worries down" is no mood
    assert arc.resolved_threads == ("I'll write the worries down before bed and see.",)
    wishes = extract_arc(
        conversation(*[(f"I want to talk about my week, part {n}.", "Go on.") for n in range(3)])
    )
    assert wishes.resolved_threads == ()  # wanting to talk is no next step


def test_moods_said_in_the_negative_do_not_count() -> None:
    turns = conversation(
        ("I'm not anxious, just really tired after the long week.", "Okay."),
        ("Work was long and the commute was longer this week.", "Mm."),
        ("I'm not sure what I want to talk about tonight.", "That's fine."),
    )
    arc = extract_arc(turns)
    assert arc.mood_opened == "tired"
    assert arc.mood_closed is None


def test_no_theme_or_mood_is_read_into_words_that_only_start_like_one_or_are_denied() -> None:
    # "moment" was a mother, "example" an exam, "painting" pain; "haven't been anxious" and
    # "not feeling too anxious" were anxious; the arc said what the person never said.
    hobbies = extract_arc(
        conversation(
            ("For example, at the moment I spend my evenings painting landscapes.", "Lovely."),
            ("I shifted to watercolours this spring and I really enjoy it.", "Nice."),
            ("I am not feeling too anxious about anything these days.", "Good."),
        )
    )
    assert (hobbies.themes, hobbies.mood_opened, hobbies.mood_closed) == ((), None, None)
    settled = extract_arc(
        conversation(
            ("Honestly I haven't been anxious at all this week, things are going well.", "Good."),
            ("I went hiking with the dog and cooked a big dinner on Sunday.", "Sounds nice."),
            ("I don't think I'm stressed any more, I'm feeling settled.", "I'm glad."),
        )
    )
    assert settled.themes == ()
    assert (settled.mood_opened, settled.mood_closed) == (None, "calmer")
    # ...while what is said, even after a "no" or a "don't know", still counts.
    worried = extract_arc(
        conversation(
            ("I don't know, I'm so anxious about my mum and the exam.", "Tell me more."),
            ("I can't sleep without worrying about it.", "That's hard."),
        )
    )
    assert worried.themes == ("anxiety", "family", "study")
    assert worried.mood_opened == "anxious"


def test_a_feeling_said_with_a_negative_that_only_says_how_much_counts() -> None:
    for said, mood in (
        ("I can't stop feeling anxious.", "anxious"),
        ("I've never been so stressed in my life.", "stressed"),
        ("I can't help feeling lonely.", "lonely"),
        ("I couldn't be more anxious.", "anxious"),
        ("No wonder I'm stressed.", "stressed"),
        ("I haven't slept and I'm anxious.", "anxious"),
        ("I haven't been anxious at all.", None),
    ):
        arc = extract_arc(conversation((said, "I hear you."), ("Mm.", "Go on.")))
        assert arc.mood_opened == mood, said


def test_a_turn_is_substantive_when_it_says_something() -> None:
    assert is_substantive("Work has been hard this week.")
    assert is_substantive("My dog died.")
    for filler in ("ok", "yeah thanks", "Okay. Yes, thank you.", "hmm I don't", ""):
        assert not is_substantive(filler), filler
    turns = conversation(("Okay thanks.", "Sure."), ("I miss my dad a lot.", "I hear you."))
    assert substantive_turns(turns) == 1


def test_a_drafted_arc_is_held_to_its_limits_whoever_drafted_it() -> None:
    long_sentence = "The user talked about " + "many things " * 80 + "at length."
    draft = ArcDraft(
        summary=" ".join(f"Sentence number {n} is here." for n in range(8)),
        themes=["Work", "work", "sleep", "family", "money", "x" * 90],
        mood_opened="anxious, restless and worried about the week ahead of them",
        mood_closed="calm\x00er",
        open_loops=[f"loop {n}" for n in range(9)],
        resolved_threads=[],
    )
    arc = settle(draft, "model")
    assert arc is not None
    assert arc.summary == " ".join(f"Sentence number {n} is here." for n in range(4))
    assert arc.themes == ("Work", "sleep", "family")
    assert arc.mood_opened is not None
    assert len(arc.mood_opened) <= 40
    assert arc.mood_opened.endswith("…")
    assert arc.mood_closed == "calmer"
    assert len(arc.open_loops) == 5

    one_long = settle(draft.model_copy(update={"summary": long_sentence}), "model")
    assert one_long is not None
    assert len(one_long.summary) <= 600
    assert one_long.summary.endswith("…")
    assert settle(draft.model_copy(update={"summary": "  \x00 "}), "model") is None


def test_four_hundred_turns_make_an_arc() -> None:
    turns = conversation(
        *[
            (f"Day {n}: work was stressful and I slept badly again.", "I hear you.")
            for n in range(400)
        ]
    )
    arc = extract_arc(turns)
    assert arc.themes == ("work", "sleep", "stress")
    assert len(arc.summary) <= 600


def test_sentences_keep_the_quotes_and_brackets_that_close_them() -> None:
    assert split_sentences('She said "go home." I did (finally.) Then? "Why?" he asked.') == [
        'She said "go home."',
        "I did (finally.)",
        "Then?",
        '"Why?"',
        "he asked.",
    ]


def test_the_users_sentence_is_quoted_whole_in_the_summary() -> None:
    arc = extract_arc(
        conversation(
            (
                "I had a rough week and I feel really stressed about work.",
                "That sounds heavy. What has weighed on you most?",
            ),
            ("What should I even do about it?", "What feels most pressing right now?"),
        )
    )
    # A sentence follows the quote: the questions left open (the user's, and the last asked).
    assert (
        'In their words: "I had a rough week and I feel really stressed about work." '
        "2 questions were left open." in arc.summary
    ), arc.summary


def test_a_quoted_question_is_still_a_question() -> None:
    arc = extract_arc(
        conversation(
            (
                'I keep asking myself "why does work scare me so much?"',
                "What do you notice when you ask it?",
            ),
        )
    )
    assert arc.open_loops[0] == 'I keep asking myself "why does work scare me so much?"'


def test_the_summary_says_a_minute_not_1_minutes() -> None:
    said = [
        "Work has been really stressful this week.",
        "My manager yelled at me in front of everyone.",
        "I feel embarrassed and I can't sleep.",
    ]
    turns = [
        SpokenTurn(text, "I hear you.", TurnOutcome.COMPLETED, START + timedelta(seconds=30 * n))
        for n, text in enumerate(said)
    ]
    assert extract_arc(turns).summary.startswith("In 3 turns over about a minute, the user")
    one = extract_arc(turns[:1]).summary
    assert one.startswith("In 1 turn, the user"), one
