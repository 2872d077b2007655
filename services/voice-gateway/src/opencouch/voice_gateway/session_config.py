"""Builds the Realtime session config and mints the browser's client secret."""

from __future__ import annotations

import hashlib
import logging

import openai
from openai import AsyncOpenAI

from opencouch.contracts.common import AssistantVoice, ErrorCode, MemoryMode
from opencouch.contracts.realtime import (
    AudioConfig,
    AudioInputConfig,
    AudioOutputConfig,
    ClientSecret,
    InputTranscription,
    RealtimeSessionConfig,
    ServerVad,
)
from opencouch.contracts.tools import tools_for_mode
from opencouch.voice_gateway.errors import ApiError
from opencouch.voice_gateway.instructions import compose_instructions
from opencouch.voice_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def build_session_config(
    settings: GatewaySettings,
    *,
    memory_mode: MemoryMode,
    memory_context: str,
    voice: AssistantVoice,
) -> RealtimeSessionConfig:
    """Server VAD that can be interrupted, input transcription, and the mode's tools."""
    return RealtimeSessionConfig(
        model=settings.realtime_model,
        instructions=compose_instructions(memory_mode, memory_context),
        audio=AudioConfig(
            input=AudioInputConfig(
                transcription=InputTranscription(model=settings.transcription_model),
                turn_detection=ServerVad(create_response=True, interrupt_response=True),
            ),
            output=AudioOutputConfig(voice=voice),
        ),
        tools=[spec.realtime_tool() for spec in tools_for_mode(memory_mode)],
    )


def safety_identifier(user_id: str | None, thread_id: str) -> str:
    """What OpenAI sees of the user: a sha256, never the id itself."""
    return hashlib.sha256((user_id or thread_id).encode()).hexdigest()


async def mint_client_secret(
    client: AsyncOpenAI,
    settings: GatewaySettings,
    config: RealtimeSessionConfig,
    identifier: str,
) -> ClientSecret:
    """An ephemeral key bound to ``config``; the API key itself never leaves the server."""
    try:
        created = await client.realtime.client_secrets.create(
            session=config.model_dump(mode="json", exclude_none=True),  # type: ignore[arg-type]
            expires_after={"anchor": "created_at", "seconds": settings.client_secret_ttl_seconds},
            extra_headers={"OpenAI-Safety-Identifier": identifier},
        )
    except openai.APIStatusError as error:
        log.error("client secret refused", extra={"status": error.status_code})
        raise ApiError(
            502, ErrorCode.REALTIME_UNAVAILABLE, "Realtime refused the session"
        ) from None
    except openai.APIError as error:
        log.error("client secret failed", extra={"error": type(error).__name__})
        raise ApiError(503, ErrorCode.REALTIME_UNAVAILABLE, "Realtime is unreachable") from None
    return ClientSecret(value=created.value, expires_at=created.expires_at)
