"""``/v1/realtime`` over WebSocket: a session of its own (``?model=``) or a sideband (``?call_id=``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from .auth import require_api_key, require_key_or_secret, websocket_protocol_token
from .calls import Call
from .emulator import Emulator
from .errors import RealtimeError
from .faults import FAULTS_HEADER, parse_faults_header
from .scenario import SCENARIO_HEADER, parse_scenario
from .transports import Transport

log = logging.getLogger(__name__)

router = APIRouter()

_SPURIOUS_HANDSHAKE_ERROR = "ASGI callable returned without completing handshake."


class DenialIsNoError(logging.Filter):
    """Drops the ERROR uvicorn's websockets-sansio protocol logs after every WebSocket Denial
    Response (Kludex/uvicorn#3138, open): the client did get the 401 or 404. This route only
    ever returns without accepting after sending one, so the line never reports a real fault
    here, and an error per refused key would page whoever alerts on the emulator's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _SPURIOUS_HANDSHAKE_ERROR


DENIAL_IS_NO_ERROR = DenialIsNoError()


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str
    abrupt: bool


class WebSocketSink:
    """Server events out over one WebSocket, in order, through a single writer."""

    def __init__(self, websocket: WebSocket, transport: Transport) -> None:
        self.transport: Transport = transport
        self._websocket = websocket
        self._queue: asyncio.Queue[str | _Close] = asyncio.Queue()
        self._closing = False

    def deliver(self, text: str) -> None:
        """Queue one event for the writer."""
        if not self._closing:
            self._queue.put_nowait(text)

    def close(self, *, code: int = 1000, reason: str = "", abrupt: bool = False) -> None:
        """Close after the events already queued (or at once and without a goodbye)."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(_Close(code, reason[:120], abrupt))

    async def write(self) -> _Close:
        """Send queued events until asked to close; returns how to close."""
        while True:
            message = await self._queue.get()
            if isinstance(message, _Close):
                return message
            await self._websocket.send_text(message)


@router.websocket("/v1/realtime")
async def realtime_websocket(websocket: WebSocket) -> None:
    """A Realtime WebSocket: a new session by ``model``, or attached to a call by ``call_id``."""
    emulator: Emulator = websocket.app.state.emulator
    call_id = websocket.query_params.get("call_id")
    model = websocket.query_params.get("model")
    offered = [
        p.strip()
        for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
        if p.strip()
    ]
    try:
        call, owns_call = _open(emulator, websocket, call_id, model, offered)
    except RealtimeError as error:
        log.info("realtime websocket refused (%s)", error.code)
        await websocket.send_denial_response(JSONResponse(error.body(), status_code=error.status))
        return
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
    sink = WebSocketSink(websocket, "websocket" if owns_call else "sideband")
    # The sideband joins a call that already exists, so it gets no session.created (as a
    # third-party client observed of OpenAI); it sends session.update and reads session.updated.
    call.attach(sink, announce=owns_call)
    writer = asyncio.create_task(sink.write())
    reader = asyncio.create_task(_read(websocket, call, sink))
    try:
        done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        if writer in done and not writer.cancelled() and writer.exception() is None:
            close = writer.result()
            reader.cancel()
            if close.abrupt:
                # Returning without a close frame makes uvicorn drop the TCP connection.
                return
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(code=close.code, reason=close.reason)
    finally:
        for task in (writer, reader):
            task.cancel()
        call.detach(sink)
        if owns_call and not call.ended:
            await call.end("websocket_closed")


def _open(
    emulator: Emulator,
    websocket: WebSocket,
    call_id: str | None,
    model: str | None,
    offered: list[str],
) -> tuple[Call, bool]:
    authorization = websocket.headers.get("authorization")
    if authorization is None:
        token = websocket_protocol_token(offered)
        authorization = f"Bearer {token}" if token else None
    api_keys = emulator.settings.api_keys
    if call_id:
        require_api_key(authorization, api_keys)
        call = emulator.calls.live(call_id)
        if call is None:
            raise RealtimeError(
                message=f"Call '{call_id}' not found.",
                code="call_not_found",
                param="call_id",
                status=404,
            )
        return call, False
    caller = require_key_or_secret(authorization, api_keys, emulator.secrets)
    config = dict(caller.secret.requested_session) if caller.secret else {"type": "realtime"}
    if model:
        config["model"] = model
    scenario_header = websocket.headers.get(SCENARIO_HEADER)
    call = emulator.new_call(
        kind="websocket",
        config=config,
        scenario=parse_scenario(scenario_header) if scenario_header else None,
        faults=parse_faults_header(websocket.headers.get(FAULTS_HEADER)),
        safety_identifier=caller.secret.safety_identifier if caller.secret else None,
    )
    return call, True


async def _read(websocket: WebSocket, call: Call, sink: WebSocketSink) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        payload = message.get("text")
        if payload is None:
            payload = message.get("bytes")
        if payload is not None:
            call.receive(payload, sink)
