"""The public voice API. Routes are thin: authorise, parse, call the domain module, reply."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from opencouch.contracts.common import ErrorCode, ErrorResponse, Identifier, SessionId
from opencouch.contracts.memory import THREAD_PAGE_MAX_TURNS, ThreadCursor
from opencouch.contracts.voice_api import (
    EndReply,
    EndRequest,
    EraseReply,
    EraseRequest,
    SessionReply,
    SessionRequest,
    ThreadTurnsReply,
    ToolsReply,
    ToolsRequest,
    TurnReply,
    TurnRequest,
)
from opencouch.runtime.errors import ServiceError
from opencouch.voice_gateway.errors import error_response
from opencouch.voice_gateway.finalization import end_session, finalization_status
from opencouch.voice_gateway.hot_routes import hot
from opencouch.voice_gateway.memory_access import erase_owner, thread_turns
from opencouch.voice_gateway.rate_limits import limited
from opencouch.voice_gateway.session_config import start_session
from opencouch.voice_gateway.state import (
    ClientAddressDep,
    GatewayDep,
    SessionCall,
    SessionCallDep,
    require_agreement,
)
from opencouch.voice_gateway.tool_calls import call_tool
from opencouch.voice_gateway.turns import record_turn
from opencouch.voice_gateway.voice_sessions import ClaimState

log = logging.getLogger(__name__)

API_PREFIX = "/api/voice/realtime"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The body is not JSON this API can read (`invalid_request`).",
        401: "Missing, invalid or expired token (`token_missing`, `token_invalid`, `token_expired`).",
        403: "The token is for another session or thread, or the body disagrees with it.",
        404: "The voice session is no longer known.",
        409: "Conflict: the session ended or expired, or an id was reused with another body.",
        413: "The request body is too large.",
        422: "The request does not fit its schema (`invalid_request`, `call_id_missing`).",
        429: "Rate limited; see `Retry-After`.",
        502: "Realtime refused to create the session.",
        503: "A dependency is unavailable; retry after `Retry-After` seconds.",
    }
    return {
        status: {"model": ErrorResponse, "description": described[status]} for status in statuses
    }


router = APIRouter(prefix=API_PREFIX)
health = APIRouter()


async def _counted(call: SessionCall) -> None:
    """Count a call that claims nothing against its session's limit (tools and turns are
    counted in the round trip that claims them)."""
    counted = await call.gateway.sessions.count_call(call.caller)
    if counted.state is ClaimState.LIMITED:
        raise limited("calls of this voice session", counted.retry_after)


@router.post(
    "/session",
    responses=_errors(400, 401, 403, 413, 422, 429, 502, 503),
    response_model_exclude_none=True,
)
async def create_session(
    gateway: GatewayDep, body: SessionRequest, client_ip: ClientAddressDep
) -> SessionReply:
    """Configure a Realtime session for the thread, mint the browser's client secret, and issue
    the voice-session token every later call carries."""
    return await start_session(gateway, body, client_ip)


@router.post("/tools", responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503))
@hot
async def run_tool(body: ToolsRequest, call: SessionCallDep) -> ToolsReply:
    """Run a function call the model made; tool failures come back as a tool output."""
    require_agreement(
        call.claims,
        thread_id=body.thread_id,
        session_id=body.session_id,
        user_id=body.user_id,
        memory_mode=body.memory_mode,
    )
    return await call_tool(call.gateway, body, call.claims, call.caller)


@router.post("/turn", responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503))
@hot
async def post_turn(body: TurnRequest, call: SessionCallDep) -> TurnReply:
    """Record a finished exchange; answered once it is durable."""
    require_agreement(
        call.claims,
        thread_id=body.thread_id,
        session_id=body.session_id,
        user_id=body.user_id,
        memory_mode=body.memory_mode,
    )
    return await record_turn(call.gateway, body, call.claims, call.caller)


@router.post(
    "/end",
    responses={
        202: {
            "model": EndReply,
            "description": "Finalization still running (poll its status), or deferred: the "
            "session was ended with `continued`.",
        },
        **_errors(400, 401, 403, 404, 413, 422, 429, 503),
    },
)
async def post_end(call: SessionCallDep, body: EndRequest | None = None) -> EndReply:
    """End the session and return its finalization, or its status while it runs.

    With no body, the session is ended as the defaults say: saved, without feedback.

    Sessions of the same thread and owner ended earlier with `continued: true` are finalized
    by this end too, with its `save` and `feedback`.

    With `continued: true` (the call dropped or expired, and the conversation goes on in a new
    session of the same thread), the session is closed now but finalized only by the
    conversation's last `/end`: the reply is 202, `pending`. No effect in incognito.
    """
    body = body or EndRequest()
    require_agreement(
        call.claims,
        thread_id=body.thread_id,
        session_id=body.session_id,
        memory_mode=body.memory_mode,
    )
    await _counted(call)
    status, reply = await end_session(call.gateway, body, call.claims)
    return _with_status(status, reply)  # type: ignore[return-value]


@router.get(
    "/sessions/{session_id}/finalization",
    responses={
        202: {"model": EndReply, "description": "Finalization still running."},
        **_errors(401, 403, 422, 429, 503),
    },
)
async def get_finalization(session_id: SessionId, call: SessionCallDep) -> EndReply:
    """The session's finalization: final (200) or the status so far (202)."""
    require_agreement(call.claims, session_id=session_id)
    await _counted(call)
    status, reply = await finalization_status(call.gateway, call.claims)
    return _with_status(status, reply)  # type: ignore[return-value]


@router.get("/threads/{thread_id}/turns", responses=_errors(401, 403, 422, 429, 503))
async def get_thread_turns(
    thread_id: Identifier,
    call: SessionCallDep,
    before: Annotated[ThreadCursor | None, Query(description="`before` of the newer page.")] = None,
    limit: Annotated[int, Query(ge=1, le=THREAD_PAGE_MAX_TURNS)] = 50,
) -> ThreadTurnsReply:
    """A page of the thread's stored turns (newest page first), for the token's thread only."""
    require_agreement(call.claims, thread_id=thread_id)
    await _counted(call)
    return await thread_turns(call.gateway, call.claims, before, limit)


@router.post("/memory/erase", responses=_errors(400, 401, 403, 404, 413, 422, 429, 503))
async def post_erase(body: EraseRequest, call: SessionCallDep) -> EraseReply:
    """Forget everything kept for the token's owner (its user, else its thread), everywhere.

    Ends the owner's live sessions first; the crisis log keeps no identity and is not touched.
    """
    await _counted(call)
    return await erase_owner(call.gateway, call.claims)


def _with_status(status: int, reply: EndReply) -> JSONResponse:
    return JSONResponse(reply.model_dump(mode="json"), status_code=status)


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@health.get(
    "/readyz",
    response_model=None,
    responses={503: {"model": ErrorResponse, "description": "NATS or Redis is unreachable."}},
)
async def readyz(gateway: GatewayDep) -> Response | dict[str, str]:
    """NATS and Redis are reachable."""
    try:
        async with asyncio.timeout(2):
            await gateway.redis.ping()
            await gateway.nc.flush(timeout=1)
    except Exception as error:
        log.warning("not ready", extra={"error": type(error).__name__})
        return error_response(
            ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "dependencies unreachable", retry_after=2)
        )
    if not gateway.nc.is_connected:
        return error_response(
            ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "NATS not connected", retry_after=2)
        )
    return {"status": "ready"}
