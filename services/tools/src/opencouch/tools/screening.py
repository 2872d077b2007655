"""Crisis screening of every user turn, in both memory modes.

Persistent turns arrive on JetStream (``TurnRecorded``): each is classified, logged if at level 2
or more, and its level published as ``TurnClassified`` for memory to store with the turn.
Incognito turns arrive on core NATS (``CrisisScreen``), which keeps nothing: each is classified
and forgotten, and the scrubbed crisis-log row is the only trace it can leave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import psycopg
import psycopg_pool
from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.common import TranscriptLine
from opencouch.contracts.events import CrisisScreen, TurnClassified, TurnRecorded
from opencouch.runtime.jetstream import publish_event
from opencouch.runtime.metrics import record_crisis_turn
from opencouch.runtime.redis_client import REDIS_OUTAGES
from opencouch.tools.classifier import (
    CrisisAssessment,
    ScreeningContext,
    classify,
    safety_question,
)
from opencouch.tools.session_state import ScreeningMemory, SessionState
from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)

LOGGED_LEVEL: Final = 2
_SCREEN_LOG_ATTEMPTS: Final = 3
_DB_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)


class CrisisScreening:
    """Classifies user turns and keeps the crisis log."""

    def __init__(self, store: ToolsStore, state: SessionState, js: JetStreamContext) -> None:
        self._store = store
        self._state = state
        self._js = js

    async def on_turn_recorded(self, turn: TurnRecorded) -> None:
        """Classify a persistent turn, log it if at risk, and publish its level.

        Errors propagate so JetStream delivers the turn again; every step is idempotent.
        """
        memory = (await self._memory(turn.session_id)).for_turn(turn.started_at or turn.recorded_at)
        assessment = classify(
            turn.user_text,
            ScreeningContext(
                after_safety_check=memory.safety_check_pending,
                safety_question=memory.safety_question,
                ideation_earlier=memory.ideation_earlier,
            ),
        )
        # Remembered first: the session's next turn is screened in this one's context even if
        # a step below fails (a Postgres blip) and this turn comes again only after it.
        await self._remember(turn, assessment)
        if assessment.level >= LOGGED_LEVEL:
            await self._store.log_crisis(
                turn.session_id, turn.client_turn_id, assessment.level, assessment.reason
            )
        classified = TurnClassified(
            session_id=turn.session_id,
            thread_id=turn.thread_id,
            client_turn_id=turn.client_turn_id,
            level=assessment.level,
            reason=assessment.reason,
            classified_at=datetime.now(UTC),
        )
        await publish_event(
            self._js, subjects.TURN_CLASSIFIED, classified, dedup_id=classified.dedup_id
        )
        record_crisis_turn(assessment.level, "persistent")  # crisis turns by level
        log.info(
            "turn classified",
            extra={"crisis_level": assessment.level, "reason": assessment.reason},
        )

    async def on_crisis_screen(self, screen: CrisisScreen) -> None:
        """Classify an incognito utterance; only a crisis-log row may outlive this call."""
        assessment = classify(screen.user_text, screening_context(screen))
        if not screen.resent:
            record_crisis_turn(assessment.level, "incognito")  # crisis turns by level
        if assessment.level < LOGGED_LEVEL:
            return
        for attempt in range(1, _SCREEN_LOG_ATTEMPTS + 1):
            try:
                logged = await self._store.log_crisis(
                    screen.session_id, screen.client_turn_id, assessment.level, assessment.reason
                )
                if logged and screen.resent:  # its first request's screen never logged it
                    record_crisis_turn(assessment.level, "incognito")
                return
            except _DB_ERRORS as error:
                # Core NATS will not deliver this again: retry briefly, then record the loss.
                log.warning(
                    "crisis log write failed",
                    extra={"attempt": attempt, "error": type(error).__name__},
                )
                await asyncio.sleep(0.2 * attempt)
        log.error("incognito crisis turn not logged", extra={"crisis_level": assessment.level})

    async def _memory(self, session_id: str) -> ScreeningMemory:
        try:
            return await self._state.screening_memory(session_id)
        except REDIS_OUTAGES as error:
            # The turn is still classified on its own words; only context is missing.
            log.warning("screening memory unavailable", extra={"error": type(error).__name__})
            return ScreeningMemory()

    async def _remember(self, turn: TurnRecorded, assessment: CrisisAssessment) -> None:
        try:
            await self._state.remember_screened(
                turn.session_id,
                turn.started_at or turn.recorded_at,
                asked=safety_question(turn.assistant_text),
                at_risk=assessment.level >= LOGGED_LEVEL,
            )
        except REDIS_OUTAGES as error:
            log.warning("screening memory not saved", extra={"error": type(error).__name__})


def screening_context(screen: CrisisScreen) -> ScreeningContext:
    """What the transcript sent with an incognito utterance says around it."""
    lines: Sequence[TranscriptLine] = screen.transcript
    if lines and lines[-1].role == "user" and lines[-1].text == screen.user_text:
        lines = lines[:-1]
    last_assistant = next((line for line in reversed(lines) if line.role == "assistant"), None)
    asked = safety_question(last_assistant.text) if last_assistant is not None else None
    # A safety check counts only if the user has not spoken since.
    if asked is not None and lines and lines[-1].role == "user":
        asked = None
    earlier = any(_at_risk(classify(line.text)) for line in lines if line.role == "user")
    return ScreeningContext(
        after_safety_check=asked is not None,
        safety_question=asked or "risk",
        ideation_earlier=earlier,
    )


def _at_risk(assessment: CrisisAssessment) -> bool:
    return assessment.level >= LOGGED_LEVEL
