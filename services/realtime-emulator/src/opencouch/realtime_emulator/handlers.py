"""HTTP endpoints: thin, validate in, call the domain, serialise out."""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from .auth import require_api_key, require_key_or_secret
from .calls import Call
from .emulator import Emulator
from .errors import RealtimeError
from .faults import FAULTS_HEADER, parse_faults_header
from .scenario import SCENARIO_HEADER, Scenario, parse_scenario
from .secrets import check_create_request
from .sessions import check_session_config
from .text_responses import check_response_request, create_response
from .webrtc import answer_offer

log = logging.getLogger(__name__)

router = APIRouter()


def get_emulator(request: Request) -> Emulator:
    """The emulator built by the lifespan."""
    emulator: Emulator = request.app.state.emulator
    return emulator


EmulatorDep = Annotated[Emulator, Depends(get_emulator)]
AuthorizationHeader = Annotated[str | None, Header()]


async def read_json_body(request: Request) -> object:
    """The request body as JSON; OpenAI's 400 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as error:
        raise RealtimeError(
            message=(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
            ),
        ) from error


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness for compose and Docker."""
    return {"status": "ok"}


@router.post("/v1/realtime/client_secrets")
async def create_client_secret(
    request: Request,
    emulator: EmulatorDep,
    authorization: AuthorizationHeader = None,
    openai_safety_identifier: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Mint an ephemeral ``ek_`` key carrying a session config, as OpenAI does."""
    require_api_key(authorization, emulator.settings.api_keys)
    body = await read_json_body(request)
    check_create_request(body)
    assert isinstance(body, dict)
    secret = emulator.secrets.mint(body, openai_safety_identifier)
    log.info("client secret minted session=%s", secret.session["id"])
    return JSONResponse(secret.response())


@router.post("/v1/responses")
async def create_text_response(
    request: Request, emulator: EmulatorDep, authorization: AuthorizationHeader = None
) -> JSONResponse:
    """A Responses API reply: JSON valid for the request's schema, or a fixed line of text."""
    require_api_key(authorization, emulator.settings.api_keys)
    body = check_response_request(await read_json_body(request))
    response = create_response(body)
    log.info("response %s created", response["id"])
    return JSONResponse(response)


@router.post("/v1/realtime/calls")
async def create_call(
    request: Request,
    emulator: EmulatorDep,
    authorization: AuthorizationHeader = None,
) -> Response:
    """Answer a WebRTC offer: raw SDP with an ``ek_`` key, or multipart ``sdp`` + ``session``."""
    caller = require_key_or_secret(authorization, emulator.settings.api_keys, emulator.secrets)
    config: dict[str, Any] = dict(caller.secret.requested_session) if caller.secret else {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/sdp":
        offer = (await request.body()).decode("utf-8", "replace")
    elif content_type == "multipart/form-data":
        offer, session = await _read_call_form(request)
        if session is not None:
            config = session
    else:
        raise RealtimeError(
            message=(
                f"Unsupported content type '{content_type or 'none'}': send application/sdp, "
                "or multipart/form-data with 'sdp' and 'session'."
            ),
            code="unsupported_content_type",
        )
    if not offer.strip():
        raise RealtimeError(
            message="Missing required parameter: 'sdp'.",
            code="missing_required_parameter",
            param="sdp",
        )
    faults = parse_faults_header(request.headers.get(FAULTS_HEADER))
    scenario = _scenario_from(request.headers.get(SCENARIO_HEADER))
    call = emulator.new_call(
        kind="webrtc",
        config=config,
        scenario=scenario,
        faults=faults,
        safety_identifier=caller.secret.safety_identifier if caller.secret else None,
    )
    try:
        _, answer = await answer_offer(call, offer)
    except RealtimeError:
        await call.end("invalid_offer")
        raise
    log.info("call %s started session=%s", call.id, call.session["id"])
    return Response(
        content=answer,
        status_code=201,
        media_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call.id}"},
    )


async def _read_call_form(request: Request) -> tuple[str, dict[str, Any] | None]:
    form = await request.form()
    unknown = [key for key in form if key not in ("sdp", "session")]
    if unknown:
        raise RealtimeError(
            message=f"Unknown parameter: '{unknown[0]}'.",
            code="unknown_parameter",
            param=unknown[0],
        )
    sdp = await _form_text(form.get("sdp"))
    if sdp is None:
        raise RealtimeError(
            message="Missing required parameter: 'sdp'.",
            code="missing_required_parameter",
            param="sdp",
        )
    raw_session = await _form_text(form.get("session"))
    if raw_session is None:
        return sdp, None
    try:
        session = json.loads(raw_session)
    except ValueError as error:
        raise RealtimeError(
            message="Invalid 'session': expected a JSON object.",
            code="invalid_value",
            param="session",
        ) from error
    check_session_config(session)
    return sdp, session


async def _form_text(value: str | UploadFile | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, UploadFile):
        return (await value.read()).decode("utf-8", "replace")
    return value


def _scenario_from(header: str | None) -> Scenario | None:
    return parse_scenario(header) if header and header.strip() else None


@router.post("/v1/realtime/calls/{call_id}/hangup")
async def hangup_call(
    call_id: str, emulator: EmulatorDep, authorization: AuthorizationHeader = None
) -> Response:
    """End a call, whether it is WebRTC or not."""
    require_key_or_secret(authorization, emulator.settings.api_keys, emulator.secrets)
    call = _live_call(emulator, call_id)
    await call.end("hangup")
    return Response(status_code=200)


@router.get("/v1/realtime/calls/{call_id}/log")
async def call_log(
    call_id: str, emulator: EmulatorDep, authorization: AuthorizationHeader = None
) -> dict[str, Any]:
    """Emulator-only: every event in and out of a call, with timestamps."""
    require_api_key(authorization, emulator.settings.api_keys)
    call = emulator.calls.find(call_id)
    if call is None:
        raise _no_call(call_id)
    return {**call.summary(), "log": call.log.entries}


@router.get("/_emulator/calls")
async def list_calls(emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: live and recently ended calls and WebSocket sessions."""
    return {"calls": [call.summary() for call in emulator.calls.all()]}


@router.get("/_emulator/sessions/{session_id}/log")
async def session_log(session_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: the event log by session id (WebSocket sessions have no call id)."""
    call = emulator.calls.find(session_id)
    if call is None:
        raise _no_call(session_id)
    return {**call.summary(), "log": call.log.entries}


@router.get("/_emulator/client_secrets/{value}")
async def inspect_client_secret(value: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: what a client sent when it minted this secret."""
    secret = emulator.secrets.get(value)
    if secret is None:
        raise RealtimeError(message="No such client secret.", code="not_found", status=404)
    return {**secret.response(), "safety_identifier": secret.safety_identifier}


@router.post("/_emulator/client_secrets/{value}/expire")
async def expire_client_secret(value: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: make a secret expire now, so expiry can be tested without waiting."""
    secret = emulator.secrets.get(value)
    if secret is None:
        raise RealtimeError(message="No such client secret.", code="not_found", status=404)
    secret.expires_at = int(time.time()) - 1
    return {**secret.response(), "safety_identifier": secret.safety_identifier}


@router.get("/_emulator/scenario")
async def current_scenario(emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: the scenario new calls follow."""
    return emulator.scenario.model_dump(mode="json")


@router.put("/_emulator/scenario")
async def replace_scenario(request: Request, emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: make new calls follow this scenario (JSON or YAML body)."""
    text = (await request.body()).decode("utf-8", "replace")
    emulator.scenario = parse_scenario(text, source="body") if text.strip() else Scenario()
    return emulator.scenario.model_dump(mode="json")


def _live_call(emulator: Emulator, call_id: str) -> Call:
    call = emulator.calls.live(call_id)
    if call is None:
        raise _no_call(call_id)
    return call


def _no_call(call_id: str) -> RealtimeError:
    return RealtimeError(
        message=f"Call '{call_id}' not found.", code="call_not_found", param="call_id", status=404
    )
