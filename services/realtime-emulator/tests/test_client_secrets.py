"""POST /v1/realtime/client_secrets, as the official spec and the openai SDK see it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from opencouch.realtime_emulator.testing import (
    API_KEY,
    RunningEmulator,
)
from opencouch.testing.openai_spec import validate_against

SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Be kind.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "near_field"},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
    },
    "tools": [
        {
            "type": "function",
            "name": "wait_for_user",
            "description": "Stay quiet until the user speaks again.",
            "parameters": {"type": "object", "properties": {}},
        }
    ],
    "tool_choice": "auto",
    "max_output_tokens": "inf",
    "truncation": "auto",
}


async def test_sdk_mints_a_secret_bound_to_the_safety_identifier(
    emulator: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    secret = await client.realtime.client_secrets.create(
        session=SESSION,  # type: ignore[arg-type]
        expires_after={"anchor": "created_at", "seconds": 120},
        extra_headers={"OpenAI-Safety-Identifier": "user-hash-1"},
    )
    assert secret.value.startswith("ek_")
    assert secret.session.type == "realtime"
    assert secret.session.audio is not None
    assert secret.session.audio.output is not None
    assert secret.session.audio.output.voice == "marin"

    recorded = (await http.get(f"/_emulator/client_secrets/{secret.value}")).json()
    assert recorded["safety_identifier"] == "user-hash-1"
    assert recorded["session"]["instructions"] == "Be kind."
    assert recorded["session"]["tools"][0]["name"] == "wait_for_user"
    assert 110 <= recorded["expires_at"] - _now() <= 121


async def test_response_matches_the_official_schema_with_defaults_filled(
    http: httpx.AsyncClient,
) -> None:
    request = {"session": {"type": "realtime"}}
    validate_against("RealtimeCreateClientSecretRequest", request)
    response = await http.post("/v1/realtime/client_secrets", json=request, headers=_auth())
    assert response.status_code == 200
    body = response.json()
    validate_against("RealtimeCreateClientSecretResponse", body)
    session = body["session"]
    assert session["object"] == "realtime.session"
    assert session["id"].startswith("sess_")
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["max_output_tokens"] == "inf"
    assert 590 <= body["expires_at"] - _now() <= 601


async def test_full_request_from_the_protocol_notes_is_accepted(http: httpx.AsyncClient) -> None:
    request = {"expires_after": {"anchor": "created_at", "seconds": 600}, "session": SESSION}
    validate_against("RealtimeCreateClientSecretRequest", request)
    response = await http.post("/v1/realtime/client_secrets", json=request, headers=_auth())
    assert response.status_code == 200, response.text
    validate_against("RealtimeCreateClientSecretResponse", response.json())
    turn = response.json()["session"]["audio"]["input"]["turn_detection"]
    assert turn["silence_duration_ms"] == 500
    assert turn["threshold"] == 0.5


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"expires_after": {"seconds": 5}}, "expires_after.seconds", "integer_below_min_value"),
        ({"expires_after": {"seconds": 7201}}, "expires_after.seconds", "integer_above_max_value"),
        ({"expires_after": {"anchor": "now"}}, "expires_after.anchor", "invalid_value"),
        (
            {"session": {"type": "realtime", "temperature": 0.8}},
            "session.temperature",
            "unknown_parameter",
        ),
        ({"session": {"model": "gpt-realtime"}}, "session.type", "missing_required_parameter"),
        (
            {"session": {"type": "realtime", "instructions": 3}},
            "session.instructions",
            "invalid_type",
        ),
        (
            {"session": {"type": "realtime", "output_modalities": ["audio", "text"]}},
            "session.output_modalities",
            "invalid_value",
        ),
        ({"surprise": True}, "surprise", "unknown_parameter"),
    ],
)
async def test_invalid_request_gets_openai_error_shape(
    http: httpx.AsyncClient, body: dict[str, Any], param: str, code: str
) -> None:
    response = await http.post("/v1/realtime/client_secrets", json=body, headers=_auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code


async def test_wrong_or_missing_key_is_401(http: httpx.AsyncClient) -> None:
    missing = await http.post("/v1/realtime/client_secrets", json={})
    wrong = await http.post(
        "/v1/realtime/client_secrets",
        json={},
        headers={"Authorization": "Bearer sk-nope-123456789"},
    )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-nope-123456789" not in wrong.text


async def test_an_ephemeral_key_cannot_mint_more_secrets(http: httpx.AsyncClient) -> None:
    minted = (await http.post("/v1/realtime/client_secrets", json={}, headers=_auth())).json()
    again = await http.post(
        "/v1/realtime/client_secrets",
        json={},
        headers={"Authorization": f"Bearer {minted['value']}"},
    )
    assert again.status_code == 401


async def test_browser_preflight_is_allowed(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/v1/realtime/client_secrets",
        headers={
            "Origin": "http://127.0.0.1:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://127.0.0.1:8080")


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def _now() -> int:
    import time

    return int(time.time())
