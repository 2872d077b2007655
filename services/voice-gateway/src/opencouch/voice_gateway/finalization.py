"""``/end`` and the finalization status: end the session once, report its finalization.

``/end`` first closes the session to new turns and tools, waits for turns in flight, and only
then counts what the finalizer must wait for. It waits up to ``end_wait_seconds`` for the
finalizer; after that the browser gets the status so far (202) and may poll the status route:
ending twice never finalizes twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import nats.errors

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import SessionEnded, SessionFinalized
from opencouch.contracts.finalizer import (
    FinalizationRecord,
    FinalizationStatusReply,
    FinalizationStatusRequest,
)
from opencouch.contracts.voice_api import EndReply, EndRequest, FinalizationStatus
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.jetstream import publish_event
from opencouch.runtime.messaging import OUTAGE_RETRY_SECONDS, request
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.tokens import VoiceSessionClaims

log = logging.getLogger(__name__)

_FINAL = (FinalizationStatus.COMPLETED, FinalizationStatus.FAILED)
# Turns in flight when /end closes the session finish within JetStream's publish timeout.
_SETTLE_SECONDS = 6.0


def _incognito(claims: VoiceSessionClaims) -> EndReply:
    return EndReply(
        finalized=False,
        status=None,
        session_id=claims.session_id,
        thread_id=claims.thread_id,
        detail="Incognito session: nothing was kept, so there is nothing to finalize.",
    )


def _pending(claims: VoiceSessionClaims, record: FinalizationRecord | None, turns: int) -> EndReply:
    return EndReply(
        finalized=False,
        status=record.status if record else FinalizationStatus.PENDING,
        session_id=claims.session_id,
        thread_id=claims.thread_id,
        detail="The session is being finalized; ask again shortly.",
        turn_count=record.turn_count if record else turns,
    )


async def _current_record(gateway: Gateway, session_id: str) -> FinalizationRecord | None:
    try:
        reply = await request(
            gateway.nc,
            subjects.FINALIZER_STATUS,
            FinalizationStatusRequest(session_id=session_id),
            FinalizationStatusReply,
            timeout=gateway.settings.finalizer_timeout_seconds,
        )
    except ServiceError as error:
        # The end event is durable, so a finalizer that is down now still finalizes later.
        log.warning("finalizer status unavailable", extra={"code": error.code.value})
        return None
    return reply.record


async def end_session(
    gateway: Gateway, body: EndRequest, claims: VoiceSessionClaims
) -> tuple[int, EndReply]:
    """End the session; returns the HTTP status (200 final, 202 still running) and reply."""
    closed = await gateway.sessions.close(claims, settle_seconds=_SETTLE_SECONDS)
    if not closed.existed:
        raise ServiceError(
            ErrorCode.VOICE_SESSION_NOT_FOUND, "This voice session is no longer known."
        )
    if claims.memory_mode is MemoryMode.INCOGNITO:
        return 200, _incognito(claims)

    existing = await _current_record(gateway, claims.session_id)
    if existing is not None and existing.status in _FINAL:
        return 200, existing.end_reply()
    finished = await _publish_and_wait(gateway, claims, body, closed.turn_count)
    if finished is not None:
        return 200, finished.end_reply()
    latest = await _current_record(gateway, claims.session_id) or existing
    if latest is not None and latest.status in _FINAL:
        return 200, latest.end_reply()
    return 202, _pending(claims, latest, closed.turn_count)


async def finalization_status(gateway: Gateway, claims: VoiceSessionClaims) -> tuple[int, EndReply]:
    """Where the session's finalization is: 200 once final, else 202 with the status so far."""
    if claims.memory_mode is MemoryMode.INCOGNITO:
        return 200, _incognito(claims)
    record = await _current_record(gateway, claims.session_id)
    if record is not None and record.status in _FINAL:
        return 200, record.end_reply()
    return 202, _pending(claims, record, await gateway.sessions.turn_count(claims.session_id))


async def _publish_and_wait(
    gateway: Gateway, claims: VoiceSessionClaims, body: EndRequest, turn_count: int
) -> FinalizationRecord | None:
    # Subscribe before publishing so a fast finalizer's answer cannot be missed.
    sub = await gateway.nc.subscribe(subjects.session_finalized(claims.session_id), max_msgs=1)
    try:
        event = SessionEnded(
            session_id=claims.session_id,
            thread_id=claims.thread_id,
            user_id=claims.user_id,
            memory_mode=claims.memory_mode,
            feedback=body.feedback,
            save=body.save,
            expected_turn_count=turn_count,
            ended_at=datetime.now(UTC),
        )
        try:
            await publish_event(gateway.js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
        except (nats.errors.Error, TimeoutError) as error:
            log.error("session end publish failed", extra={"error": type(error).__name__})
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "The session end could not be stored yet; retry.",
                retry_after=OUTAGE_RETRY_SECONDS,
            ) from None
        if gateway.settings.end_wait_seconds <= 0:
            return None
        try:
            msg = await sub.next_msg(timeout=gateway.settings.end_wait_seconds)
        except nats.errors.TimeoutError:
            return None
        return SessionFinalized.model_validate_json(msg.data).record
    finally:
        await sub.unsubscribe()
