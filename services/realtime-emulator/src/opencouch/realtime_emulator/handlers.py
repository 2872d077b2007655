"""HTTP endpoints: thin, validate in, call the domain, serialise out."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from .auth import require_api_key
from .emulator import Emulator
from .errors import RealtimeError
from .secrets import check_create_request

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


@router.get("/_emulator/client_secrets/{value}")
async def inspect_client_secret(value: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Emulator-only: what a client sent when it minted this secret."""
    secret = emulator.secrets.get(value)
    if secret is None:
        raise RealtimeError(message="No such client secret.", code="not_found", status=404)
    return {**secret.response(), "safety_identifier": secret.safety_identifier}
