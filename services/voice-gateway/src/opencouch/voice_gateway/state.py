"""The gateway's long-lived clients, built once in the app's lifespan, and request accessors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from openai import AsyncOpenAI
from redis.asyncio import Redis

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.runtime.errors import ServiceError
from opencouch.voice_gateway.identity import IdentityVerifier
from opencouch.voice_gateway.rate_limits import RateLimits
from opencouch.voice_gateway.served_tools import ServedTools
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.tokens import TokenSigner, VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import VoiceSessionStore


@dataclass(frozen=True)
class Gateway:
    """Everything a request needs, shared by all requests."""

    settings: GatewaySettings
    nc: NatsClient
    js: JetStreamContext
    redis: Redis
    sessions: VoiceSessionStore
    tokens: TokenSigner
    identity: IdentityVerifier
    limits: RateLimits
    served: ServedTools
    realtime: AsyncOpenAI


def get_gateway(request: Request) -> Gateway:
    """The app's ``Gateway``, as a FastAPI dependency."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="VoiceSessionToken",
    description="The `token` from `POST /session`, as `Authorization: Bearer <token>`.",
)


def session_claims(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> VoiceSessionClaims:
    """The verified claims of the request's voice-session token (401 without a valid one)."""
    if credentials is None:
        raise ServiceError(
            ErrorCode.TOKEN_MISSING,
            "This call needs the voice-session token from /session as 'Authorization: Bearer'.",
        )
    return gateway.tokens.verify(credentials.credentials)


ClaimsDep = Annotated[VoiceSessionClaims, Depends(session_claims)]


def client_address(request: Request) -> str:
    """The caller's address, for per-client limits (``X-Forwarded-For`` only when trusted)."""
    gateway = get_gateway(request)
    if gateway.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",", 1)[0].strip()
        if first:
            return first[:64]
    return request.client.host if request.client else "unknown"


ClientAddressDep = Annotated[str, Depends(client_address)]


def require_agreement(
    claims: VoiceSessionClaims,
    *,
    thread_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    memory_mode: MemoryMode | None = None,
) -> None:
    """Refuse (403) a body that names another session, thread, user or mode than its token."""
    disagreements = [
        name
        for name, claimed, held in (
            ("thread_id", thread_id, claims.thread_id),
            ("session_id", session_id, claims.session_id),
            ("user_id", user_id, claims.user_id),
            ("memory_mode", memory_mode, claims.memory_mode),
        )
        if claimed is not None and claimed != held
    ]
    if disagreements:
        raise ServiceError(
            ErrorCode.TOKEN_MISMATCH,
            f"{', '.join(disagreements)} disagree(s) with the voice-session token.",
        )
