"""``/session``: the Realtime session config, private memory context and client secret."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

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
from opencouch.contracts.tools import ToolSpec
from opencouch.contracts.voice_api import SessionReply, SessionRequest
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import request
from opencouch.runtime.metrics import VOICE_SESSIONS_STARTED
from opencouch.voice_gateway.instructions import compose_instructions
from opencouch.voice_gateway.memory_access import thread_has_turns
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.voice_sessions import new_session_id

log = logging.getLogger(__name__)


def build_session_config(
    settings: GatewaySettings,
    *,
    memory_mode: MemoryMode,
    memory_context: str,
    voice: AssistantVoice,
    tools: Sequence[ToolSpec],
) -> RealtimeSessionConfig:
    """Server VAD that can be interrupted, input transcription, and the tools offered."""
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
        tools=[spec.realtime_tool() for spec in tools],
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
    """An ephemeral key bound to ``config``; the API key itself never leaves the server.

    The client's retries share one deadline, ``realtime_timeout_seconds``: past it the
    caller gets a 503 while it is still waiting, rather than a secret minted after it left.
    """
    try:
        async with asyncio.timeout(settings.realtime_timeout_seconds):
            created = await client.realtime.client_secrets.create(
                session=config.model_dump(mode="json", exclude_none=True),  # type: ignore[arg-type]
                expires_after={
                    "anchor": "created_at",
                    "seconds": settings.client_secret_ttl_seconds,
                },
                extra_headers={"OpenAI-Safety-Identifier": identifier},
            )
    except TimeoutError:
        log.error("client secret timed out", extra={"seconds": settings.realtime_timeout_seconds})
        raise ServiceError(
            ErrorCode.REALTIME_UNAVAILABLE,
            "The voice service is not answering right now; try again in a moment.",
            retry_after=5,
        ) from None
    except openai.APIStatusError as error:
        log.error("client secret refused", extra={"status": error.status_code})
        raise ServiceError(
            ErrorCode.REALTIME_UNAVAILABLE,
            "The voice service could not start a conversation just now; try again shortly.",
            status=502,
        ) from None
    except openai.APIError as error:
        log.error("client secret failed", extra={"error": type(error).__name__})
        raise ServiceError(
            ErrorCode.REALTIME_UNAVAILABLE,
            "The voice service can't be reached right now; try again in a moment.",
            retry_after=5,
        ) from None
    return ClientSecret(value=created.value, expires_at=created.expires_at)


async def _memory_context(
    gateway: Gateway, thread_id: str, user_id: str | None, mode: MemoryMode
) -> MemoryContextReply:
    """Nothing in incognito (memory is not even asked); else memory's context, or a 503."""
    if mode is MemoryMode.INCOGNITO:
        return MemoryContextReply(memory_mode=MemoryMode.INCOGNITO)
    try:
        return await request(
            gateway.nc,
            subjects.MEMORY_CONTEXT,
            MemoryContextRequest(thread_id=thread_id, user_id=user_id, memory_mode=mode),
            MemoryContextReply,
            timeout=gateway.settings.memory_timeout_seconds,
        )
    except ServiceError as error:
        log.error("memory context unavailable", extra={"code": error.code.value})
        raise ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "Memory is unavailable; try again shortly.",
            retry_after=2,
        ) from None


def _refuse_thread() -> ServiceError:
    return ServiceError(
        ErrorCode.THREAD_FORBIDDEN,
        "This conversation can't be opened here: it belongs to someone else, or was started in "
        "another browser (its thread secret is missing). Start a new conversation instead.",
    )


async def start_session(gateway: Gateway, body: SessionRequest, client_ip: str) -> SessionReply:
    """Check who may open the thread, configure the session, mint its secret, issue its token.

    Limits and ownership are checked before anything is minted or read, so a refused request
    costs no OpenAI call and reveals no memory. The client address's limit counts every request;
    the user's and thread's only once the thread's owner admitted the caller, so a stranger's
    refused requests never spend the budget of a thread they cannot open. A new thread is bound
    to its caller only once everything else succeeded, so a failed first session never locks a
    browser out; whatever fails once the session exists discards it, so none keeps a live slot.
    """
    await gateway.limits.session_from(client_ip)
    user_id = await gateway.identity.user_id(body)
    owner = await gateway.sessions.thread_owner(body.thread_id)
    if owner is not None and not owner.admits(user_id, body.thread_secret):
        raise _refuse_thread()
    if owner is None and await thread_has_turns(gateway, body.thread_id):
        # Its turns are kept but no one is bound to it any more (idle past
        # thread_binding_days, or Redis lost its binding): no caller can show it is theirs, so
        # none may bind it and read (or erase) what was said. A new thread is started instead.
        raise _refuse_thread()
    await gateway.limits.session_start(user_id=user_id, thread_id=body.thread_id)
    memory = await _memory_context(gateway, body.thread_id, user_id, body.memory_mode)
    config = build_session_config(
        gateway.settings,
        memory_mode=body.memory_mode,
        memory_context=memory.context_text,
        voice=body.assistant_voice,
        tools=await gateway.served.for_mode(body.memory_mode),
    )
    token, claims = gateway.tokens.issue(
        session_id=new_session_id(),
        thread_id=body.thread_id,
        user_id=user_id,
        memory_mode=body.memory_mode,
    )
    if not await gateway.sessions.create(
        claims,
        message_count=memory.message_count,
        max_live=gateway.settings.max_sessions_per_user,
    ):
        raise ServiceError(
            ErrorCode.TOO_MANY_SESSIONS,
            "Too many voice sessions are open at once; end one first.",
            retry_after=30,
        )
    try:
        secret = await mint_client_secret(
            gateway.realtime,
            gateway.settings,
            config,
            safety_identifier(user_id, body.thread_id),
        )
        owner, thread_secret = await gateway.sessions.bind_thread(
            body.thread_id,
            user_id,
            body.thread_secret,
            # A signed-in person's words kept in an anonymous thread make it theirs; an
            # incognito visit keeps none, and leaves the thread to whoever holds its secret.
            adopt=body.memory_mode is MemoryMode.PERSISTENT,
        )
        if thread_secret is None and not owner.admits(user_id, body.thread_secret):
            raise _refuse_thread()  # another caller bound the new thread a moment earlier
        reply = SessionReply(
            session_id=claims.session_id,
            thread_id=body.thread_id,
            user_id=user_id,
            memory_mode=body.memory_mode,
            token=token,
            token_expires_at=claims.expires_at,
            session_expires_at=claims.session_expires_at,
            thread_secret=thread_secret,
            client_secret=secret,
            realtime_calls_url=gateway.settings.realtime_calls_url,
            session=config.model_copy(update={"instructions": None}),
        )
    except BaseException:
        await gateway.sessions.discard(claims)
        raise
    log.info(
        "voice session created",
        extra={"session_id": claims.session_id, "memory_mode": body.memory_mode.value},
    )
    VOICE_SESSIONS_STARTED.labels(body.memory_mode.value).inc()
    return reply
