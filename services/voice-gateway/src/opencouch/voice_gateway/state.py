"""The gateway's long-lived clients, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from openai import AsyncOpenAI
from redis.asyncio import Redis

from opencouch.contracts.common import ErrorCode
from opencouch.voice_gateway.errors import ApiError
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.voice_sessions import VoiceSession, VoiceSessionStore


@dataclass(frozen=True)
class Gateway:
    """Everything a request needs, shared by all requests."""

    settings: GatewaySettings
    nc: NatsClient
    js: JetStreamContext
    redis: Redis
    sessions: VoiceSessionStore
    realtime: AsyncOpenAI

    async def voice_session(self, thread_id: str, session_id: str | None) -> VoiceSession:
        """The session a request refers to, or a 404 the browser can act on."""
        session = await self.sessions.find(thread_id, session_id)
        if session is None:
            raise ApiError(
                404,
                ErrorCode.VOICE_SESSION_NOT_FOUND,
                "No live voice session for this thread; start one with /session.",
            )
        return session


def get_gateway(request: Request) -> Gateway:
    """The app's ``Gateway``, as a FastAPI dependency."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
