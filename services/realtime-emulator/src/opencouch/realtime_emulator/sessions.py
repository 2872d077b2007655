"""The realtime session object: OpenAI's defaults, client overrides and ``session.update``.

A session is kept as the wire object itself (a JSON dict), because clients read it back
verbatim in ``session.created`` / ``session.updated`` and in minted client secrets.
"""

from __future__ import annotations

import copy
from typing import Any

from openai.types.realtime.realtime_session_create_request_param import (
    RealtimeSessionCreateRequestParam,
)
from openai.types.realtime.realtime_transcription_session_create_request_param import (
    RealtimeTranscriptionSessionCreateRequestParam,
)

from .errors import RealtimeError
from .ids import new_id
from .params import check_params, check_range

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, warm voice assistant running in an offline Realtime emulator."
)

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
PCM_24K: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}

# Fields OpenAI prints as null but the official schema types as objects or arrays; they are
# left out instead so every event validates against the spec.
_OMITTED_WHEN_NULL = ("transcription", "noise_reduction")


def check_session_config(config: object, path: str = "session") -> None:
    """Raise a 400-style ``RealtimeError`` unless ``config`` is a valid GA session config."""
    if isinstance(config, dict) and config.get("type") == "transcription":
        check_params(RealtimeTranscriptionSessionCreateRequestParam, config, path)
    else:
        check_params(RealtimeSessionCreateRequestParam, config, path)
    assert isinstance(config, dict)
    _check_limits(config, path)


def _check_limits(config: dict[str, Any], path: str) -> None:
    modalities = config.get("output_modalities")
    if isinstance(modalities, list) and len(set(modalities)) > 1:
        raise RealtimeError(
            message="It is not possible to request both 'text' and 'audio' output modalities.",
            code="invalid_value",
            param=f"{path}.output_modalities",
        )
    tokens = config.get("max_output_tokens")
    if isinstance(tokens, int):
        check_range(f"{path}.max_output_tokens", tokens, 1, 4096)
    audio = config.get("audio") or {}
    output = audio.get("output") or {}
    check_range(f"{path}.audio.output.speed", output.get("speed"), 0.25, 1.5)
    turn = (audio.get("input") or {}).get("turn_detection")
    if isinstance(turn, dict):
        turn_path = f"{path}.audio.input.turn_detection"
        check_range(f"{turn_path}.threshold", turn.get("threshold"), 0.0, 1.0)
        check_range(f"{turn_path}.prefix_padding_ms", turn.get("prefix_padding_ms"), 0, 10_000)
        check_range(f"{turn_path}.silence_duration_ms", turn.get("silence_duration_ms"), 0, 10_000)
        if turn.get("idle_timeout_ms") is not None:
            check_range(f"{turn_path}.idle_timeout_ms", turn["idle_timeout_ms"], 5000, 30000)


def new_session(
    config: dict[str, Any] | None,
    *,
    default_model: str,
    default_voice: str,
    expires_at: int,
) -> dict[str, Any]:
    """The full session object OpenAI reports for ``config``, defaults filled."""
    if config and config.get("type") == "transcription":
        return _new_transcription_session(config, expires_at=expires_at)
    session: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess_"),
        "model": default_model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": dict(PCM_24K),
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {"format": dict(PCM_24K), "voice": default_voice, "speed": 1.0},
        },
    }
    if config:
        apply_update(session, config)
    return session


def _new_transcription_session(config: dict[str, Any], *, expires_at: int) -> dict[str, Any]:
    audio_in = (config.get("audio") or {}).get("input") or {}
    turn = audio_in.get("turn_detection", dict(SERVER_VAD_DEFAULTS))
    session: dict[str, Any] = {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": new_id("sess_"),
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": audio_in.get("format", dict(PCM_24K)),
                "turn_detection": (
                    None
                    if turn is None
                    else {
                        key: value
                        for key, value in _turn_detection(turn).items()
                        if key in ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")
                    }
                ),
            }
        },
    }
    for key in ("transcription", "noise_reduction"):
        if audio_in.get(key) is not None:
            session["audio"]["input"][key] = copy.deepcopy(audio_in[key])
    if config.get("include"):
        session["include"] = list(config["include"])
    return session


def apply_update(session: dict[str, Any], update: dict[str, Any]) -> None:
    """Merge a (validated) session config into ``session`` as ``session.update`` does.

    Top-level fields replace; ``audio.input`` and ``audio.output`` merge field by field, and a
    new ``turn_detection`` gets the defaults of its type.
    """
    for key, value in update.items():
        if key in ("type", "object", "id", "expires_at"):
            continue
        if key == "audio":
            _merge_audio(session, value or {})
        elif key == "include" and value is None:
            session.pop("include", None)
        else:
            session[key] = copy.deepcopy(value)


def _merge_audio(session: dict[str, Any], audio: dict[str, Any]) -> None:
    current = session.setdefault("audio", {})
    for direction in ("input", "output"):
        changes = audio.get(direction)
        if not changes:
            continue
        target = current.setdefault(direction, {})
        for key, value in changes.items():
            if key == "turn_detection":
                target[key] = None if value is None else _turn_detection(value)
            elif value is None and key in _OMITTED_WHEN_NULL:
                target.pop(key, None)
            else:
                target[key] = copy.deepcopy(value)


def _turn_detection(value: dict[str, Any]) -> dict[str, Any]:
    defaults = SEMANTIC_VAD_DEFAULTS if value.get("type") == "semantic_vad" else SERVER_VAD_DEFAULTS
    return {**defaults, **copy.deepcopy(value)}


def check_model_unchanged(session: dict[str, Any], update: dict[str, Any]) -> None:
    """OpenAI fixes the model when the session starts; refuse a different one."""
    model = update.get("model")
    if model is not None and model != session.get("model"):
        raise RealtimeError(
            message="Cannot change the model of a session once it has started.",
            code="invalid_value",
            param="session.model",
        )


def update_session(
    session: dict[str, Any], update: dict[str, Any], *, assistant_spoke: bool
) -> None:
    """Apply a validated ``session.update`` to a running session, refusing what OpenAI refuses:
    another session type or model, or a new voice once the assistant has spoken."""
    if update.get("type") != session.get("type"):
        raise RealtimeError(
            message="Cannot change the session type of a running session.",
            code="invalid_value",
            param="session.type",
        )
    check_model_unchanged(session, update)
    voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
    current_voice = session["audio"]["output"].get("voice")
    if voice is not None and voice != current_voice and assistant_spoke:
        raise RealtimeError(
            message="Cannot update a conversation's voice if assistant audio is present.",
            code="cannot_update_voice",
            param="session.audio.output.voice",
        )
    apply_update(session, update)
