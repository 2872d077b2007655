"""``/turn``: record a finished exchange durably, exactly once.

Answered only after JetStream stored the turn; deduplicated by ``(voice session,
client_turn_id)`` in Redis (a retry gets the first answer, a different body with the same id a
409), by ``Nats-Msg-Id`` in JetStream, and by a unique key in Postgres. Incognito turns are
stored nowhere: their user speech goes to the crisis classifier over core NATS, and is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import nats.errors

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import CrisisScreen, TurnRecorded
from opencouch.contracts.tools import TOOL_CATALOG
from opencouch.contracts.voice_api import (
    RESPONSE_STYLE,
    ROUTE_PRIORITY,
    Route,
    TurnReply,
    TurnRequest,
    TurnResponseStyle,
    TurnToolCall,
)
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.jetstream import publish_event
from opencouch.runtime.messaging import OUTAGE_RETRY_SECONDS
from opencouch.runtime.metrics import TURNS_RECORDED
from opencouch.runtime.observation import with_trace_context
from opencouch.voice_gateway.latency_marks import record_latency_marks
from opencouch.voice_gateway.rate_limits import limited
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.tokens import VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import Caller, Claim, ClaimState, fingerprint

log = logging.getLogger(__name__)

_NOT_THE_TURN: Final[set[str]] = {"thread_id", "session_id", "user_id", "memory_mode", "transcript"}
"""Fields outside a turn's identity. The ids are checked against the token; the transcript is
screening context only, stored nowhere, so a retry with another window is the same turn (and a
turn claimed before the field existed keeps its fingerprint)."""


def infer_turn_metadata(
    tool_calls: Sequence[TurnToolCall],
    route: Route | None = None,
    response_style: TurnResponseStyle | None = None,
) -> tuple[Route, TurnResponseStyle]:
    """Route and style from the tools the turn used: the highest-priority route wins.

    Each tool's route is a field of its catalog entry. The browser's own route is only a
    fallback when no tool decides: policy is decided here, not by the client.
    """
    routes = {
        TOOL_CATALOG[call.tool_name].route for call in tool_calls if call.tool_name in TOOL_CATALOG
    }
    routes.discard("therapeutic")
    for candidate in ROUTE_PRIORITY:
        if candidate in routes:
            return candidate, RESPONSE_STYLE[candidate]
    return route or "therapeutic", response_style or "voice"


async def record_turn(
    gateway: Gateway, body: TurnRequest, claims: VoiceSessionClaims, caller: Caller
) -> TurnReply:
    """Store the turn (persistent mode) and answer once it is durable."""
    incognito = claims.memory_mode is MemoryMode.INCOGNITO
    body_print = turn_fingerprint(body)
    # An incognito claim holds a fingerprint only; it is never completed, so /end waits for it
    # not at all (nothing of it is stored for the finalizer to wait for).
    claim = await gateway.sessions.claim_turn(
        caller, body.client_turn_id, body_print, in_flight=not incognito
    )
    if claim.state is ClaimState.MISSING:
        raise ServiceError(
            ErrorCode.VOICE_SESSION_NOT_FOUND, "This voice session is no longer known."
        )
    if claim.state is ClaimState.ENDED:
        raise ServiceError(ErrorCode.SESSION_ENDED, "This voice session has ended.")
    if claim.state is ClaimState.LIMITED:
        raise limited("calls of this voice session", claim.retry_after)
    if claim.conflicts_with(body_print):
        raise ServiceError(
            ErrorCode.TURN_CONFLICT,
            "This client_turn_id was already recorded with a different body.",
        )
    if claim.state is ClaimState.CLAIMED or (not incognito and _unanswered(claim)):
        try:
            # The exchange still open when Realtime ends the call at its cap arrives late.
            claims.refuse_if_expired(grace=gateway.settings.late_turn_seconds)
        except ServiceError:
            if claim.state is ClaimState.CLAIMED:
                await gateway.sessions.release_turn(
                    claims.session_id, body.client_turn_id, in_flight=not incognito
                )
            raise
    if incognito:
        # A retry is screened again: nothing kept says whether the first request was (it may
        # have died, or answered 503 on a lost reply, between its claim and its screen). The
        # crisis log keeps one row per turn, so screening twice logs nothing twice.
        await _screen_incognito(gateway, body, claims, resent=claim.state is not ClaimState.CLAIMED)
        if claim.state is ClaimState.CLAIMED:
            route, _ = infer_turn_metadata(body.tool_calls, body.route, body.response_style)
            TURNS_RECORDED.labels(claims.memory_mode.value, route).inc()
            record_latency_marks(body, first_turn=claim.nth_turn == 1)
        return TurnReply(recorded=False, thread_id=claims.thread_id, message_count=0)
    if claim.record is not None and claim.record.get("message_count") is not None:
        # An acknowledged turn keeps its place, even after the session ended.
        return TurnReply(
            recorded=True, thread_id=claims.thread_id, message_count=claim.record["message_count"]
        )

    route, style = infer_turn_metadata(body.tool_calls, body.route, body.response_style)
    event = TurnRecorded(
        session_id=claims.session_id,
        thread_id=claims.thread_id,
        user_id=claims.user_id,
        client_turn_id=body.client_turn_id,
        user_text=body.user_text,
        assistant_text=body.assistant_text,
        started_at=body.started_at,
        route=route,
        response_style=style,
        tool_calls=body.tool_calls,
        outcome=body.outcome,
        recorded_at=datetime.now(UTC),
    )
    try:
        await publish_event(gateway.js, subjects.TURN_RECORDED, event, dedup_id=event.dedup_id)
    except (nats.errors.Error, TimeoutError) as error:
        if claim.state is ClaimState.CLAIMED:
            await gateway.sessions.release_turn(claims.session_id, body.client_turn_id)
        log.error("turn publish failed", extra={"error": type(error).__name__})
        if isinstance(error, nats.errors.MaxPayloadError):  # retrying cannot help
            raise ServiceError(
                ErrorCode.PAYLOAD_TOO_LARGE, "This turn is too large to store."
            ) from None
        raise ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "The turn could not be stored yet; retry it.",
            retry_after=OUTAGE_RETRY_SECONDS,
        ) from None
    count, nth = await gateway.sessions.complete_turn(
        claims.session_id, body.client_turn_id, body_print
    )
    if count < 0:
        # /end counted the session's turns while this one was on its way (its first try died
        # after its claim, or its publish outlasted the wait): it is not in the finalizer's
        # count, so it is not acknowledged either.
        raise ServiceError(ErrorCode.SESSION_ENDED, "This voice session has ended.")
    log.debug(
        "turn acknowledged",
        extra={"session_id": claims.session_id, "client_turn_id": body.client_turn_id},
    )
    if nth:  # this request recorded it (not a concurrent duplicate)
        TURNS_RECORDED.labels(claims.memory_mode.value, route).inc()
        record_latency_marks(body, first_turn=nth == 1)
    return TurnReply(recorded=True, thread_id=claims.thread_id, message_count=count)


def turn_fingerprint(body: TurnRequest) -> str:
    """What a retry of the turn must repeat: its body but for the fields outside its identity."""
    return fingerprint(body.model_dump_json(exclude=_NOT_THE_TURN))


def _unanswered(claim: Claim) -> bool:
    """A turn not acknowledged yet (a first try, or a duplicate of one still in flight)."""
    return claim.record is None or claim.record.get("message_count") is None


async def _screen_incognito(
    gateway: Gateway, body: TurnRequest, claims: VoiceSessionClaims, *, resent: bool
) -> None:
    """Nothing is kept; the user's words are only screened for crisis, on a path that forgets.

    The recent lines the browser sent go with them: incognito keeps no screening memory, so
    they are all the classifier knows of what came before (a safety check, earlier ideation).
    """
    if body.user_text.strip():
        screen = CrisisScreen(
            session_id=claims.session_id,
            client_turn_id=body.client_turn_id,
            user_text=body.user_text,
            transcript=body.transcript,
            resent=resent,
        )
        try:
            await gateway.nc.publish(
                subjects.CRISIS_SCREEN,
                screen.model_dump_json().encode(),
                headers=with_trace_context(),
            )
        except nats.errors.Error as error:
            # Best effort by design: incognito keeps nothing to retry from.
            log.warning("crisis screen not sent", extra={"error": type(error).__name__})
