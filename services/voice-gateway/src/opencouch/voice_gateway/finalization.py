"""``/end``: publish the session's end once and report its finalization.

Waits up to ``end_wait_seconds`` for the finalizer; after that the browser gets the status so
far (202) and may ask again: ending twice never finalizes twice.
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
from opencouch.runtime.jetstream import publish_event
from opencouch.runtime.messaging import ServiceCallError, request
from opencouch.voice_gateway.errors import ApiError
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.voice_sessions import VoiceSession

log = logging.getLogger(__name__)

_FINAL = (FinalizationStatus.COMPLETED, FinalizationStatus.FAILED)


def _reply(record: FinalizationRecord) -> EndReply:
    return EndReply(
        finalized=record.status is FinalizationStatus.COMPLETED,
        status=record.status,
        session_id=record.session_id,
        thread_id=record.thread_id,
        detail=record.detail,
        summary=record.summary,
        themes=record.themes,
        mood_opened=record.mood_opened,
        mood_closed=record.mood_closed,
        turn_count=record.turn_count,
        open_loops=record.open_loops,
        resolved_threads=record.resolved_threads,
        finalized_at=record.updated_at if record.status in _FINAL else None,
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
    except ServiceCallError as error:
        # The end event is durable, so a finalizer that is down now still finalizes later.
        log.warning("finalizer status unavailable", extra={"code": error.code.value})
        return None
    return reply.record


async def end_session(gateway: Gateway, body: EndRequest) -> tuple[int, EndReply]:
    """End the session; returns the HTTP status (200 final, 202 still running) and reply."""
    session = await gateway.voice_session(body.thread_id, body.session_id)
    if session.effective_mode(body.memory_mode) is MemoryMode.INCOGNITO:
        return 200, EndReply(
            finalized=False,
            status=None,
            session_id=session.session_id,
            thread_id=session.thread_id,
            detail="Incognito session: nothing was kept, so there is nothing to finalize.",
        )

    existing = await _current_record(gateway, session.session_id)
    if existing is not None and existing.status in _FINAL:
        return 200, _reply(existing)

    finished = await _publish_and_wait(gateway, session, body)
    if finished is not None:
        return 200, _reply(finished)
    latest = await _current_record(gateway, session.session_id) or existing
    if latest is not None and latest.status in _FINAL:
        return 200, _reply(latest)
    return 202, EndReply(
        finalized=False,
        status=latest.status if latest else FinalizationStatus.PENDING,
        session_id=session.session_id,
        thread_id=session.thread_id,
        detail="The session is being finalized; ask again shortly.",
        turn_count=await gateway.sessions.turn_count(session.session_id),
    )


async def _publish_and_wait(
    gateway: Gateway, session: VoiceSession, body: EndRequest
) -> FinalizationRecord | None:
    # Subscribe before publishing so a fast finalizer's answer cannot be missed.
    sub = await gateway.nc.subscribe(subjects.session_finalized(session.session_id), max_msgs=1)
    try:
        event = SessionEnded(
            session_id=session.session_id,
            thread_id=session.thread_id,
            user_id=session.user_id,
            memory_mode=MemoryMode.PERSISTENT,
            feedback=body.feedback,
            expected_turn_count=await gateway.sessions.turn_count(session.session_id),
            ended_at=datetime.now(UTC),
        )
        try:
            await publish_event(gateway.js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
        except (nats.errors.Error, TimeoutError) as error:
            log.error("session end publish failed", extra={"error": type(error).__name__})
            raise ApiError(
                503, ErrorCode.SERVICE_UNAVAILABLE, "The session end could not be stored; retry."
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
