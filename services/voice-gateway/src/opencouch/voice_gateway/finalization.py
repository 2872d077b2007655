"""``/end`` and the finalization status: end the session once, report its finalization.

``/end`` first closes the session to new turns and tools, waits for turns in flight, and only
then counts what the finalizer must wait for. It waits up to ``end_wait_seconds`` for the
finalizer; after that the browser gets the status so far (202) and may poll the status route:
ending twice never finalizes twice.

A conversation may span several voice sessions of one thread: when the call drops or Realtime
expires the session, the page goes on in a new one and ends the old one with ``continued``.
That end closes the session like any other, but defers its finalization (``VoiceSessionStore``
keeps it under its thread and owner, without publishing ``SessionEnded``): the conversation's
last ``/end`` decides for all of them, so "end without saving" keeps no summary or new memory
of any part of the conversation, and feedback covers all of it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import nats.errors

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import SessionClosed, SessionEnded, SessionFinalized
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
from opencouch.voice_gateway.voice_sessions import DEFAULT_CHOICE, DeferredEnd, EndChoice

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


def _deferred(claims: VoiceSessionClaims, turns: int) -> EndReply:
    return EndReply(
        finalized=False,
        status=FinalizationStatus.PENDING,
        session_id=claims.session_id,
        thread_id=claims.thread_id,
        detail=(
            "The session is closed; the conversation goes on in a new session, and this one "
            "will be finalized when the conversation ends."
        ),
        turn_count=turns,
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
    gateway: Gateway,
    body: EndRequest,
    claims: VoiceSessionClaims,
    *,
    wait_seconds: float | None = None,
) -> tuple[int, EndReply]:
    """End the session; returns the HTTP status (200 final, 202 still running) and reply.

    Waits up to ``wait_seconds`` (default ``end_wait_seconds``) for the finalizer. Until an end
    has done its part (the finalization published, or deferred, or nothing to keep), the session
    stays the gateway's to end should no retry come (see ``abandoned``)."""
    reply = await _end(gateway, body, claims, wait_seconds)
    await gateway.sessions.ended(claims.session_id)
    return reply


async def _end(
    gateway: Gateway, body: EndRequest, claims: VoiceSessionClaims, wait_seconds: float | None
) -> tuple[int, EndReply]:
    choice = None if body.continued else EndChoice(save=body.save, feedback=body.feedback)
    closed = await gateway.sessions.close(claims, settle_seconds=_SETTLE_SECONDS, final=choice)
    if not closed.existed:
        raise ServiceError(
            ErrorCode.VOICE_SESSION_NOT_FOUND, "This voice session is no longer known."
        )
    await _announce_closed(gateway, claims)
    if claims.memory_mode is MemoryMode.INCOGNITO:
        await gateway.sessions.drop_outputs(claims.session_id)
        return 200, _incognito(claims)

    existing = await _current_record(gateway, claims.session_id)
    if body.continued:
        # Not if it was already ended for good: its finalization started, or an end that
        # decides came first (the page's continued end for a dropped call, retried past the
        # person's End) and is finalizing it. Nothing is left to defer.
        if existing is None and await gateway.sessions.defer_end(claims, closed.turn_count):
            return 202, _deferred(claims, closed.turn_count)
        if existing is not None and existing.status in _FINAL:
            return 200, existing.end_reply()
        return 202, _pending(claims, existing, closed.turn_count)

    assert choice is not None  # not continued
    await _finalize_deferred(gateway, choice, claims)
    if existing is not None and existing.status in _FINAL:
        return 200, existing.end_reply()
    wait = gateway.settings.end_wait_seconds if wait_seconds is None else wait_seconds
    finished = await _publish_and_wait(gateway, claims, body, closed.turn_count, wait)
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
    gateway: Gateway,
    claims: VoiceSessionClaims,
    body: EndRequest,
    turn_count: int,
    wait_seconds: float,
) -> FinalizationRecord | None:
    # Subscribe before publishing so a fast finalizer's answer cannot be missed.
    sub = await gateway.nc.subscribe(subjects.session_finalized(claims.session_id), max_msgs=1)
    try:
        await _publish_end(
            gateway,
            SessionEnded(
                session_id=claims.session_id,
                thread_id=claims.thread_id,
                user_id=claims.user_id,
                memory_mode=claims.memory_mode,
                feedback=body.feedback,
                save=body.save,
                expected_turn_count=turn_count,
                ended_at=datetime.now(UTC),
            ),
        )
        if wait_seconds <= 0:
            return None
        try:
            msg = await sub.next_msg(timeout=wait_seconds)
        except nats.errors.TimeoutError:
            return None
        return SessionFinalized.model_validate_json(msg.data).record
    finally:
        await sub.unsubscribe()


async def _announce_closed(gateway: Gateway, claims: VoiceSessionClaims) -> None:
    """Tell the session's scratch-state owners it closed (every ``/end``, so a retried end
    repeats a message that was lost). Best effort: what is not dropped now still expires."""
    closed = SessionClosed(session_id=claims.session_id, memory_mode=claims.memory_mode)
    try:
        await gateway.nc.publish(subjects.SESSION_CLOSED, closed.model_dump_json().encode())
    except nats.errors.Error as error:
        log.warning("session close not announced", extra={"error": type(error).__name__})


async def _publish_end(gateway: Gateway, event: SessionEnded) -> None:
    """Publish a session's end (idempotent: one dedup id per session); 503 if it cannot be."""
    try:
        await publish_event(gateway.js, subjects.SESSION_ENDED, event, dedup_id=event.dedup_id)
    except (nats.errors.Error, TimeoutError) as error:
        log.error("session end publish failed", extra={"error": type(error).__name__})
        raise ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "The session end could not be stored yet; retry.",
            retry_after=OUTAGE_RETRY_SECONDS,
        ) from None


async def _finalize_deferred(
    gateway: Gateway, choice: EndChoice, claims: VoiceSessionClaims
) -> None:
    """Finalize the earlier sessions of this conversation with this end's save and feedback."""
    # The session being ended now is finalized after, as any session is.
    ended = await finalize_deferred(
        gateway, claims.owner_id, claims.thread_id, choice, but=claims.session_id
    )
    if ended:
        log.info(
            "deferred sessions ended", extra={"session_id": claims.session_id, "sessions": ended}
        )


async def finalize_deferred(
    gateway: Gateway,
    owner_id: str,
    thread_id: str,
    choice: EndChoice | None,
    *,
    but: str | None = None,
    retry_at: float | None = None,
) -> int:
    """Finalize the owner's deferred sessions of the thread (all ``but`` one) with ``choice``
    (None: nobody chose, so each as an earlier end that failed chose, else saved); how many.

    They are taken from Redis atomically, so of two ends racing only one publishes each; any
    not published yet go back, with the choice, so a retry of the end (503) finalizes them, or
    the gateway does at ``retry_at`` (see ``VoiceSessionStore.restore_deferred``).
    """
    taken = await gateway.sessions.take_deferred(owner_id, thread_id)
    earlier = [entry for entry in taken if entry.session_id != but]
    for done, entry in enumerate(earlier):
        try:
            await _publish_end(gateway, _deferred_end_event(entry, choice))
        except ServiceError:
            await gateway.sessions.restore_deferred(
                owner_id, thread_id, earlier[done:], choice=choice, retry_at=retry_at
            )
            raise
    return len(earlier)


def _deferred_end_event(entry: DeferredEnd, choice: EndChoice | None) -> SessionEnded:
    if choice is None:
        choice = EndChoice.decoded(entry.choice) if entry.choice else DEFAULT_CHOICE
    return SessionEnded(
        session_id=entry.session_id,
        thread_id=entry.thread_id,
        user_id=entry.user_id,
        memory_mode=MemoryMode.PERSISTENT,  # an incognito end is never deferred
        feedback=choice.feedback,
        save=choice.save,
        expected_turn_count=entry.turn_count,
        ended_at=datetime.fromtimestamp(entry.deferred_at, UTC),
    )
