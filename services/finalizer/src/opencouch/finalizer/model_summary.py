"""The language-model summariser: OpenAI's Responses API with a structured output.

The model drafts the arc as ``ArcDraft`` (its JSON schema comes from that pydantic model);
code then holds it to the arc's limits. When the model cannot answer (no network, an error,
a refusal, an unusable draft), the extractive summariser writes the arc instead, so a session
is never left without one for that reason. The peak crisis level is never asked of the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import openai
from openai import AsyncOpenAI

from opencouch.finalizer.arc import ArcDraft, SessionArc, SpokenTurn, Summariser, settle

log = logging.getLogger(__name__)

MODEL_INPUT_MAX_CHARS: Final = 60_000
"""Transcript characters sent at most; a longer session keeps its start and its end."""

INSTRUCTIONS: Final = """\
You write the private end-of-session note of a supportive voice companion. You are given the \
transcript of one finished conversation between a user and the companion.

Describe the session, do not continue it. Write about the user in the third person. Stay with \
what was said: no diagnosis, no risk assessment, no advice, and no details that identify \
anyone beyond what the user chose to share. The note is kept as the user's own memory of the \
session and may be shown to them.

- summary: two to four sentences, at most 600 characters.
- themes: up to three short topic labels.
- mood_opened, mood_closed: a few words each, or null when it cannot be told.
- open_loops: what was still open when the session ended.
- resolved_threads: what was settled, or next steps the user chose.
"""


class ModelSummariser:
    """Arcs drafted by a model through the openai SDK, with ``fallback`` when it fails."""

    def __init__(self, client: AsyncOpenAI, model: str, fallback: Summariser) -> None:
        self._client = client
        self._model = model
        self._fallback = fallback

    async def summarise(self, turns: Sequence[SpokenTurn], *, owner_digest: str) -> SessionArc:
        """The model's arc of ``turns``; the fallback's when the model gives none."""
        try:
            response = await self._client.responses.parse(
                model=self._model,
                instructions=INSTRUCTIONS,
                input=[{"role": "user", "content": transcript_text(turns)}],
                text_format=ArcDraft,
                store=False,
                safety_identifier=owner_digest,
            )
        except (openai.OpenAIError, ValueError) as error:
            # ValueError: output that is no valid ArcDraft. No message: it may quote the text.
            log.warning("model summary failed", extra={"error": type(error).__name__})
            return await self._fallback.summarise(turns, owner_digest=owner_digest)
        draft = response.output_parsed
        arc = settle(draft, "model") if draft is not None else None
        if arc is None:
            log.warning("model summary unusable", extra={"status": response.status})
            return await self._fallback.summarise(turns, owner_digest=owner_digest)
        return arc


def transcript_text(turns: Sequence[SpokenTurn]) -> str:
    """The turns as ``User:``/``Companion:`` lines; the middle left out past the cap."""
    lines = [f"User: {turn.user_text}\nCompanion: {turn.assistant_text}".strip() for turn in turns]
    text = "\n".join(lines)
    if len(text) <= MODEL_INPUT_MAX_CHARS:
        return text
    budget = MODEL_INPUT_MAX_CHARS // 2
    head = _within(lines, budget)
    tail = _within(lines[len(head) :][::-1], budget)[::-1]
    left_out = len(lines) - len(head) - len(tail)
    return "\n".join([*head, f"[{left_out} turns left out here]", *tail])


def _within(lines: Sequence[str], budget: int) -> list[str]:
    """The first lines whose total length (with newlines) stays within ``budget``."""
    kept: list[str] = []
    used = 0
    for line in lines:
        used += len(line) + 1
        if used > budget:
            break
        kept.append(line)
    return kept
