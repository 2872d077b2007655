"""The Realtime session config we send to OpenAI (GA shape), and the client secret it yields.

Only the fields this product sets are modelled; each follows ``RealtimeSessionCreateRequestGA``
of the official spec. Audio formats are left out on purpose: over WebRTC they are negotiated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from opencouch.contracts.common import AssistantVoice, Contract


class InputTranscription(Contract):
    """Asynchronous transcription of the user's speech, used to record turns."""

    model: str = "gpt-4o-mini-transcribe"


class ServerVad(Contract):
    """Server voice-activity detection: the model answers after speech, and can be interrupted."""

    type: Literal["server_vad"] = "server_vad"
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    prefix_padding_ms: Annotated[int, Field(ge=0)] = 300
    silence_duration_ms: Annotated[int, Field(ge=0)] = 500
    create_response: bool = True
    interrupt_response: bool = True


class NoiseReduction(Contract):
    """Input noise reduction; near-field suits a headset or laptop microphone."""

    type: Literal["near_field", "far_field"] = "near_field"


class AudioInputConfig(Contract):
    """How the user's audio is heard."""

    transcription: InputTranscription = InputTranscription()
    turn_detection: ServerVad = ServerVad()
    noise_reduction: NoiseReduction = NoiseReduction()


class AudioOutputConfig(Contract):
    """How the assistant sounds."""

    voice: AssistantVoice = "cedar"


class AudioConfig(Contract):
    """Input and output audio settings."""

    input: AudioInputConfig = AudioInputConfig()
    output: AudioOutputConfig = AudioOutputConfig()


class RealtimeFunctionTool(Contract):
    """A function the model may call; ``parameters`` is generated from a pydantic model."""

    type: Literal["function"] = "function"
    name: str
    description: str
    parameters: dict[str, Any]


class RealtimeSessionConfig(Contract):
    """The session part of ``POST /v1/realtime/client_secrets`` (``type: realtime``)."""

    type: Literal["realtime"] = "realtime"
    model: str
    instructions: str | None = None
    """Always set when minting; left out of what the browser is shown (it holds private context)."""
    output_modalities: list[Literal["audio"]] = ["audio"]
    audio: AudioConfig
    tools: list[RealtimeFunctionTool]
    tool_choice: Literal["auto", "none", "required"] = "auto"


class ClientSecret(Contract):
    """An ephemeral Realtime key for the browser; it only opens sessions until ``expires_at``."""

    value: str
    expires_at: int
    """Unix seconds."""
