"""The public voice API. Routes are thin: parse, call the domain module, reply."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from opencouch.contracts.common import ErrorCode, ErrorResponse
from opencouch.contracts.voice_api import (
    EndReply,
    EndRequest,
    SessionReply,
    SessionRequest,
    ToolsReply,
    ToolsRequest,
    TurnReply,
    TurnRequest,
)
from opencouch.voice_gateway.errors import error_response
from opencouch.voice_gateway.finalization import end_session
from opencouch.voice_gateway.session_config import start_session
from opencouch.voice_gateway.state import GatewayDep
from opencouch.voice_gateway.tool_calls import call_tool
from opencouch.voice_gateway.turns import record_turn

log = logging.getLogger(__name__)

_ERRORS = {status: {"model": ErrorResponse} for status in (404, 409, 422, 502, 503)}
router = APIRouter(prefix="/api/voice/realtime", responses=_ERRORS)  # type: ignore[arg-type]
health = APIRouter()


@router.post("/session")
async def create_session(gateway: GatewayDep, body: SessionRequest) -> SessionReply:
    """Configure a Realtime session for the thread and mint the browser's client secret."""
    return await start_session(gateway, body)


@router.post("/tools")
async def run_tool(gateway: GatewayDep, body: ToolsRequest) -> ToolsReply:
    """Run a function call the model made; failures come back as a tool output."""
    return await call_tool(gateway, body)


@router.post("/turn")
async def post_turn(gateway: GatewayDep, body: TurnRequest) -> TurnReply:
    """Record a finished exchange; answered once it is durable."""
    return await record_turn(gateway, body)


@router.post("/end", responses={202: {"model": EndReply}})
async def post_end(gateway: GatewayDep, body: EndRequest) -> JSONResponse:
    """End the session and return its finalization, or its status while it runs."""
    status, reply = await end_session(gateway, body)
    return JSONResponse(reply.model_dump(mode="json"), status_code=status)


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@health.get("/readyz", response_model=None)
async def readyz(gateway: GatewayDep) -> Response | dict[str, str]:
    """NATS and Redis are reachable."""
    try:
        async with asyncio.timeout(2):
            await gateway.redis.ping()
            await gateway.nc.flush(timeout=1)
    except Exception as error:
        log.warning("not ready", extra={"error": type(error).__name__})
        return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, "dependencies unreachable")
    if not gateway.nc.is_connected:
        return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, "NATS not connected")
    return {"status": "ready"}
