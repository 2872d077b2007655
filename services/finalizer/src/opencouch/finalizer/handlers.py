"""Thin handlers: the status request, and the session-end consumer."""

from __future__ import annotations

import logging

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.events import SessionEnded, SessionFinalized
from opencouch.contracts.finalizer import (
    FinalizationRecord,
    FinalizationStatusReply,
    FinalizationStatusRequest,
)
from opencouch.contracts.memory import SessionTranscriptReply, SessionTranscriptRequest
from opencouch.contracts.voice_api import FinalizationStatus
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import FinalizationStore
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.jetstream import RetryLater, publish_event
from opencouch.runtime.messaging import request
from opencouch.runtime.metrics import record_finalization

log = logging.getLogger(__name__)


class FinalizerHandlers:
    """Finalization over one store, asking memory for transcripts over NATS."""

    def __init__(
        self,
        store: FinalizationStore,
        nc: NatsClient,
        js: JetStreamContext,
        settings: FinalizerSettings,
    ) -> None:
        self._store = store
        self._nc = nc
        self._js = js
        self._settings = settings

    async def status(self, req: FinalizationStatusRequest) -> FinalizationStatusReply:
        """The session's finalization record, or None if its end has not been seen."""
        return FinalizationStatusReply(record=await self._store.get(req.session_id))

    async def on_session_ended(self, event: SessionEnded) -> None:
        """Finalize once: wait for memory to hold every acknowledged turn, then complete."""
        record = await self._store.begin(event.session_id, event.thread_id)
        if record.status in (FinalizationStatus.COMPLETED, FinalizationStatus.FAILED):
            await self._announce(record)
            return
        try:
            transcript = await request(
                self._nc,
                subjects.MEMORY_SESSION_TRANSCRIPT,
                SessionTranscriptRequest(session_id=event.session_id),
                SessionTranscriptReply,
                timeout=self._settings.memory_timeout_seconds,
            )
        except ServiceError as error:
            raise RetryLater(
                f"memory: {error.code}", self._settings.turn_wait_retry_seconds
            ) from error
        stored = len(transcript.turns)
        if stored < event.expected_turn_count:
            raise RetryLater(
                f"memory holds {stored} of {event.expected_turn_count} turns",
                self._settings.turn_wait_retry_seconds,
            )
        completed = await self._store.complete(
            event.session_id,
            turn_count=stored,
            detail=f"Session finalized with {stored} recorded turns.",
            feedback=event.feedback,
        )
        if completed is not None:
            record_finalization("completed", event.ended_at)  # duration since the session ended
        final = completed or await self._store.get(event.session_id)
        if final is not None:
            log.info(
                "session finalized",
                extra={"session_id": event.session_id, "turn_count": final.turn_count},
            )
            await self._announce(final)

    async def on_give_up(self, event: SessionEnded) -> None:
        """Retries ran out: record the failure so status queries stop saying in progress."""
        failed = await self._store.fail(
            event.session_id, "Finalization could not complete; the transcript is kept."
        )
        if failed is not None:
            record_finalization("failed", event.ended_at)  # duration since the session ended
            await self._announce(failed)

    async def _announce(self, record: FinalizationRecord) -> None:
        result = SessionFinalized(record=record)
        await publish_event(
            self._js,
            subjects.session_finalized(record.session_id),
            result,
            dedup_id=result.dedup_id,
        )
