"""Gateway policy that needs no servers: turn metadata, instructions, settings."""

from __future__ import annotations

import pytest

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.voice_api import ToolCallStatus, TurnToolCall
from opencouch.voice_gateway.instructions import compose_instructions
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.turns import infer_turn_metadata


def calls(*names: str) -> list[TurnToolCall]:
    return [TurnToolCall(tool_name=name, status=ToolCallStatus.COMPLETED) for name in names]


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (("lookup_crisis_resources", "show_memory_status"), ("crisis", "crisis_response")),
        (
            ("answer_grounded_lookup", "load_guided_exercise_skill"),
            ("grounded_lookup", "grounded_lookup"),
        ),
        (("show_saved_memory", "load_guided_exercise_skill"), ("memory_control", "memory_control")),
        (("record_guided_exercise_progress",), ("guided_exercise", "guided_exercise")),
        (("wait_for_user",), ("therapeutic", "voice")),
        ((), ("therapeutic", "voice")),
    ],
)
def test_turn_metadata_follows_the_first_matching_tool_rule(
    tools: tuple[str, ...], expected: tuple[str, str]
) -> None:
    assert infer_turn_metadata(calls(*tools)) == expected


def test_the_browser_cannot_claim_a_route_the_tools_contradict() -> None:
    assert infer_turn_metadata(calls("lookup_crisis_resources"), "therapeutic", "voice") == (
        "crisis",
        "crisis_response",
    )
    assert infer_turn_metadata([], "guided_exercise", "guided_exercise") == (
        "guided_exercise",
        "guided_exercise",
    )


def test_incognito_instructions_promise_no_memory_and_carry_no_context() -> None:
    incognito = compose_instructions(MemoryMode.INCOGNITO, "Prefers short answers")
    assert "Memory is off" in incognito
    assert "Prefers short answers" not in incognito
    persistent = compose_instructions(MemoryMode.PERSISTENT, "Prefers short answers")
    assert "Private memory context:\nPrefers short answers" in persistent
    for text in (incognito, persistent):
        assert "lookup_crisis_resources" in text


def test_no_key_or_an_empty_key_means_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    settings = GatewaySettings()
    assert settings.uses_emulator
    assert settings.realtime_base_url == "http://127.0.0.1:8090/v1"
    assert settings.realtime_calls_url == "http://127.0.0.1:8090/v1/realtime/calls"


def test_a_key_goes_to_openai_never_to_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("VOICE_GATEWAY_EMULATOR_BASE_URL", "http://realtime-emulator:8090/v1")
    settings = GatewaySettings()
    assert not settings.uses_emulator
    assert settings.realtime_base_url == "https://api.openai.com/v1"
    assert settings.realtime_calls_url == "https://api.openai.com/v1/realtime/calls"
    assert settings.realtime_api_key == "sk-test"
    assert "sk-test" not in repr(settings)


def test_production_refuses_to_run_on_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("VOICE_GATEWAY_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="OPENAI_API_KEY is required"):
        GatewaySettings()


def test_cors_origins_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example")
    assert GatewaySettings().cors_origins == ["https://a.example", "https://b.example"]
