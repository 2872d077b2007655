"""``/turn``: record a finished exchange durably, exactly once.

Answered only after JetStream stored the turn; deduplicated by ``(thread, client_turn_id)``
in Redis (a retry gets the first answer, a different body with the same id a 409), by
``Nats-Msg-Id`` in JetStream, and by a unique key in Postgres.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import nats.errors

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.events import TurnRecorded
from opencouch.contracts.tools import TOOL_CATALOG, ToolOwner
from opencouch.contracts.voice_api import (
    Route,
    TurnReply,
    TurnRequest,
    TurnResponseStyle,
    TurnToolCall,
)
from opencouch.runtime.jetstream import publish_event
from opencouch.voice_gateway.errors import ApiError
from opencouch.voice_gateway.state import Gateway

log = logging.getLogger(__name__)

_CRISIS_TOOLS = frozenset({"lookup_crisis_resources", "get_crisis_support_template"})
_EXERCISE_TOOLS = frozenset(
    {"list_guided_exercise_skills", "load_guided_exercise_skill", "record_guided_exercise_progress"}
)
_MEMORY_TOOLS = frozenset(
    name for name, spec in TOOL_CATALOG.items() if spec.owner is ToolOwner.MEMORY
)


def infer_turn_metadata(
    tool_calls: Sequence[TurnToolCall],
    route: Route | None = None,
    response_style: TurnResponseStyle | None = None,
) -> tuple[Route, TurnResponseStyle]:
    """Route and style from the tools the turn used; the first rule that matches wins.

    The browser's own route is only a fallback: policy is decided here, not by the client.
    """
    used = {call.tool_name for call in tool_calls}
    if used & _CRISIS_TOOLS:
        return "crisis", "crisis_response"
    if "answer_grounded_lookup" in used:
        return "grounded_lookup", "grounded_lookup"
    if used & _MEMORY_TOOLS:
        return "memory_control", "memory_control"
    if used & _EXERCISE_TOOLS:
        return "guided_exercise", "guided_exercise"
    return route or "therapeutic", response_style or "voice"


def fingerprint(body: TurnRequest) -> str:
    """Identifies a turn body, to tell an honest retry from a conflicting reuse of an id."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


async def record_turn(gateway: Gateway, body: TurnRequest) -> TurnReply:
    """Store the turn (persistent mode) and answer once it is durable."""
    session = await gateway.voice_session(body.thread_id, body.session_id)
    if session.effective_mode(body.memory_mode) is MemoryMode.INCOGNITO:
        return TurnReply(recorded=False, thread_id=body.thread_id, message_count=0)

    body_print = fingerprint(body)
    claim = await gateway.sessions.claim_turn(body.thread_id, body.client_turn_id, body_print)
    if claim.conflict:
        raise ApiError(
            409,
            ErrorCode.TURN_CONFLICT,
            "This client_turn_id was already recorded with a different body.",
        )
    if claim.message_count is not None:
        return TurnReply(recorded=True, thread_id=body.thread_id, message_count=claim.message_count)

    route, style = infer_turn_metadata(body.tool_calls, body.route, body.response_style)
    event = TurnRecorded(
        session_id=session.session_id,
        thread_id=session.thread_id,
        user_id=session.user_id,
        client_turn_id=body.client_turn_id,
        user_text=body.user_text,
        assistant_text=body.assistant_text,
        route=route,
        response_style=style,
        tool_calls=body.tool_calls,
        outcome=body.outcome,
        recorded_at=datetime.now(UTC),
    )
    try:
        await publish_event(gateway.js, subjects.TURN_RECORDED, event, dedup_id=event.dedup_id)
    except (nats.errors.Error, TimeoutError) as error:
        if claim.fresh:
            await gateway.sessions.release_turn(body.thread_id, body.client_turn_id)
        log.error("turn publish failed", extra={"error": type(error).__name__})
        raise ApiError(
            503, ErrorCode.SERVICE_UNAVAILABLE, "The turn could not be stored; retry it."
        ) from None
    count = await gateway.sessions.complete_turn(session, body.client_turn_id, body_print)
    log.info(
        "turn acknowledged",
        extra={"session_id": session.session_id, "client_turn_id": body.client_turn_id},
    )
    return TurnReply(recorded=True, thread_id=body.thread_id, message_count=count)
