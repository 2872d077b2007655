"""The request a tool's owner is sent is built from the validated body and the token's claims
without validating them again: it must be exactly what validating them would have built, and
what the owner accepts."""

from __future__ import annotations

import time

import pytest

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallRequest
from opencouch.contracts.voice_api import ToolsRequest
from opencouch.voice_gateway.tokens import VoiceSessionClaims
from opencouch.voice_gateway.tool_calls import tool_request

NOW = int(time.time())

BODIES = [
    {"tool_name": "wait_for_user", "call_id": "call_1", "arguments": {}},
    {
        "tool_name": "lookup_crisis_resources",
        "call_id": "call_2",
        "arguments": {},
        "current_user_message": "I'm in Toronto and it's bad — « très » bad",
        "transcript": [
            {"role": "user", "text": "hello"},
            {"role": "assistant", "text": "Hi. What's on your mind?"},
        ],
        "client_turn_id": "turn-7",
    },
    {
        "tool_name": "get_crisis_support_template",
        "call_id": "call_3",
        "arguments": {"risk_level": "moderate", "nested": {"list": [1, 2.5, None, True, "x"]}},
    },
]
CLAIMS = [
    VoiceSessionClaims(f"vs_{'a' * 32}", "thread-1", None, MemoryMode.PERSISTENT, NOW, NOW + 60),
    VoiceSessionClaims(f"vs_{'b' * 32}", "thread-2", "user-9", MemoryMode.INCOGNITO, NOW, NOW),
]


@pytest.mark.parametrize("raw", BODIES, ids=lambda raw: raw["tool_name"])
@pytest.mark.parametrize("claims", CLAIMS, ids=["anonymous", "a user"])
def test_the_request_built_is_the_one_validation_builds(
    raw: dict[str, object], claims: VoiceSessionClaims
) -> None:
    body = ToolsRequest.model_validate(raw)
    built = tool_request(TOOL_CATALOG[body.tool_name], body, claims)
    # Validating the same values builds the same request, byte for byte as it is sent.
    validated = ToolCallRequest.model_validate(built.model_dump())
    assert built == validated
    sent = built.model_dump_json()
    assert sent == validated.model_dump_json()
    assert ToolCallRequest.model_validate_json(sent) == validated  # as its owner reads it
    # The call is the body's; who calls is the token's.
    assert (built.tool_name, built.arguments) == (body.tool_name, body.arguments)
    context = built.context
    assert (context.session_id, context.thread_id, context.user_id, context.memory_mode) == (
        claims.session_id,
        claims.thread_id,
        claims.user_id,
        claims.memory_mode,
    )
    assert context.session_expires_at == claims.session_expires_at
    assert (context.current_user_message, context.transcript) == (
        body.current_user_message,
        body.transcript,
    )
    assert (context.client_turn_id, context.call_id) == (body.client_turn_id, body.call_id)
