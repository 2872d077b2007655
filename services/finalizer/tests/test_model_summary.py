"""The language model's arc through the unchanged openai SDK, against the emulator's
``/v1/responses`` (a structured output valid for ``ArcDraft``'s schema); and the fallback to the
extractive arc when the model cannot answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from openai import AsyncOpenAI

from opencouch.contracts.voice_api import TurnOutcome
from opencouch.finalizer.arc import SpokenTurn, split_sentences
from opencouch.finalizer.extractive import ExtractiveSummariser, extract_arc
from opencouch.finalizer.model_summary import (
    MODEL_INPUT_MAX_CHARS,
    ModelSummariser,
    transcript_text,
)
from opencouch.finalizer.service import openai_client, summariser_for
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.realtime_emulator.testing import RunningEmulator

START = datetime(2025, 3, 1, 21, 0, tzinfo=UTC)
TURNS = [
    SpokenTurn(user, "I hear you.", TurnOutcome.COMPLETED, START + timedelta(minutes=n))
    for n, user in enumerate(
        (
            "My exams start next week and I can't focus on studying at all.",
            "I keep comparing myself to my classmates and feel like a failure.",
            "Maybe I could study in the library with a friend instead.",
        )
    )
]


def summariser(emulator: RunningEmulator, key: str | None = None) -> ModelSummariser:
    client = AsyncOpenAI(api_key=key or emulator.api_key, base_url=emulator.base_url, max_retries=0)
    return ModelSummariser(client, "gpt-4.1-mini", fallback=ExtractiveSummariser())


async def test_the_model_drafts_the_arc_as_a_structured_output_held_to_its_limits(
    realtime_emulator: RunningEmulator,
) -> None:
    arc = await summariser(realtime_emulator).summarise(TURNS, owner_digest="0" * 64)
    assert arc.method == "model"
    # The emulator echoes the start of what it was given into free-text fields.
    assert arc.summary.startswith("User: My exams start next week")
    assert len(arc.summary) <= 600
    assert 1 <= len(split_sentences(arc.summary)) <= 4
    assert len(arc.themes) <= 3
    assert all(len(mood or "") <= 40 for mood in (arc.mood_opened, arc.mood_closed))


async def test_when_the_model_cannot_answer_the_arc_is_extracted_instead(
    realtime_emulator: RunningEmulator,
) -> None:
    refused = await summariser(realtime_emulator, key="sk-not-a-key").summarise(
        TURNS, owner_digest="0" * 64
    )
    assert refused == extract_arc(TURNS)
    assert refused.method == "extractive"


def test_a_long_transcript_keeps_its_start_and_end_within_the_cap() -> None:
    turns = [
        SpokenTurn(f"turn {n} " + "words " * 60, "reply", TurnOutcome.COMPLETED, START)
        for n in range(600)
    ]
    text = transcript_text(turns)
    assert len(text) <= MODEL_INPUT_MAX_CHARS + 100
    assert text.startswith("User: turn 0 ")
    assert "User: turn 599 " in text
    assert "turns left out here]" in text
    assert transcript_text(turns[:3]).count("User:") == 3


def test_the_model_drafts_arcs_when_a_key_is_configured_else_the_extractive_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "FINALIZER_OPENAI_API_KEY", "FINALIZER_SUMMARISER"):
        monkeypatch.delenv(name, raising=False)
    offline = FinalizerSettings()
    assert openai_client(offline) is None
    assert isinstance(summariser_for(offline, openai_client(offline)), ExtractiveSummariser)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-only")
    keyed = FinalizerSettings()
    client = openai_client(keyed)
    assert client is not None
    assert isinstance(summariser_for(keyed, client), ModelSummariser)
    # A key does not override an operator who chose the extractive rules.
    monkeypatch.setenv("FINALIZER_SUMMARISER", "extractive")
    assert openai_client(FinalizerSettings()) is None
