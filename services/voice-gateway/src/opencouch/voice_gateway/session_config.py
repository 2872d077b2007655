"""``/session``: the Realtime session config, private memory context and client secret."""

from __future__ import annotations

import hashlib
import logging

import openai
from openai import AsyncOpenAI

from opencouch.contracts import subjects
from opencouch.contracts.common import AssistantVoice, ErrorCode, MemoryMode
from opencouch.contracts.memory import MemoryContextReply, MemoryContextRequest
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
from opencouch.contracts.voice_api import SessionReply, SessionRequest
from opencouch.runtime.messaging import ServiceCallError, request
from opencouch.voice_gateway.errors import ApiError
from opencouch.voice_gateway.instructions import compose_instructions
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.state import Gateway

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


async def _memory_context(gateway: Gateway, body: SessionRequest) -> MemoryContextReply:
    """Nothing in incognito (memory is not even asked); else memory's context, or a 503."""
    if body.memory_mode is MemoryMode.INCOGNITO:
        return MemoryContextReply(memory_mode=MemoryMode.INCOGNITO)
    try:
        return await request(
            gateway.nc,
            subjects.MEMORY_CONTEXT,
            MemoryContextRequest(
                thread_id=body.thread_id, user_id=body.user_id, memory_mode=body.memory_mode
            ),
            MemoryContextReply,
            timeout=gateway.settings.memory_timeout_seconds,
        )
    except ServiceCallError as error:
        log.error("memory context unavailable", extra={"code": error.code.value})
        raise ApiError(
            503, ErrorCode.SERVICE_UNAVAILABLE, "Memory is unavailable; try again shortly."
        ) from None


async def start_session(gateway: Gateway, body: SessionRequest) -> SessionReply:
    """Configure the session, mint its client secret, then record it as the thread's current."""
    memory = await _memory_context(gateway, body)
    config = build_session_config(
        gateway.settings,
        memory_mode=body.memory_mode,
        memory_context=memory.context_text,
        voice=body.assistant_voice,
    )
    secret = await mint_client_secret(
        gateway.realtime,
        gateway.settings,
        config,
        safety_identifier(body.user_id, body.thread_id),
    )
    session = await gateway.sessions.create(
        thread_id=body.thread_id,
        user_id=body.user_id,
        memory_mode=body.memory_mode,
        message_count=memory.message_count,
    )
    log.info(
        "voice session created",
        extra={"session_id": session.session_id, "memory_mode": body.memory_mode.value},
    )
    return SessionReply(
        session_id=session.session_id,
        thread_id=body.thread_id,
        memory_mode=body.memory_mode,
        client_secret=secret,
        realtime_calls_url=gateway.settings.realtime_calls_url,
        session=config,
    )
