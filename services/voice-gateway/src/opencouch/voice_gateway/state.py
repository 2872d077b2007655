"""The gateway's long-lived clients, built once in the app's lifespan, and request accessors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

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
from opencouch.voice_gateway.refusals import RefusedSessions
from opencouch.voice_gateway.running_calls import RunningCalls
from opencouch.voice_gateway.served_tools import OwnerWatch, ServedTools
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.tokens import TokenSigner, VoiceSessionClaims
from opencouch.voice_gateway.voice_sessions import Caller, VoiceSessionStore

log = logging.getLogger(__name__)


class Background:
    """Work finished after a reply was sent: kept until done, logged if it fails, drained at
    shutdown so a stop never drops it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` without the caller waiting for it."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background work failed", extra={"error": type(task.exception()).__name__})

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for what is still running."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)


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
    owners: OwnerWatch
    realtime: AsyncOpenAI
    background: Background
    refused: RefusedSessions
    """Sessions whose calls this process saw refused lately (their pure tools wait for the
    claim)."""
    running: RunningCalls
    """The tool calls this process has claimed and not yet stored the output of, as it tells a
    replay of one on another process."""


async def get_gateway(request: Request) -> Gateway:
    """The app's ``Gateway``, as a FastAPI dependency."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="VoiceSessionToken",
    description="The `token` from `POST /session`, as `Authorization: Bearer <token>`.",
)


def _address(request: Request, gateway: Gateway) -> str:
    if gateway.settings.trust_forwarded_for:
        # The proxy in front appended the address it saw last; what comes before it is
        # whatever the client sent, and a client could name a new address on every request.
        # A proxy may append a header line of its own rather than an entry to the client's:
        # the last entry of the last line, either way.
        lines = request.headers.getlist("x-forwarded-for")
        last = lines[-1].rsplit(",", 1)[-1].strip() if lines else ""
        if last:
            return last[:64]
    return request.client.host if request.client else "unknown"


async def client_address(request: Request) -> str:
    """The caller's address, for per-client limits (``X-Forwarded-For`` only when trusted)."""
    return _address(request, request.app.state.gateway)


ClientAddressDep = Annotated[str, Depends(client_address)]


@dataclass(frozen=True)
class SessionCall:
    """A call of a live voice session: the gateway, the token's verified claims, the caller."""

    gateway: Gateway
    claims: VoiceSessionClaims
    client_ip: str

    @property
    def caller(self) -> Caller:
        """Whose rate counters the call counts against."""
        return Caller(
            session_id=self.claims.session_id,
            thread_id=self.claims.thread_id,
            user_id=self.claims.user_id,
            address=self.client_ip,
        )


async def session_call(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SessionCall:
    """The verified session a request calls for (401 without a valid token). One dependency, as
    resolving each costs more than its own work; the call is counted against its limits in the
    Redis round trip that decides it."""
    if credentials is None:
        raise ServiceError(
            ErrorCode.TOKEN_MISSING,
            "This call needs the voice-session token from /session as 'Authorization: Bearer'.",
        )
    return verified_call(request, credentials.credentials)


def verified_call(request: Request, token: str) -> SessionCall:
    """The session ``token`` calls for; ``ServiceError`` (401) if it does not verify."""
    gateway: Gateway = request.app.state.gateway
    claims = gateway.tokens.verify(token)
    return SessionCall(gateway, claims, _address(request, gateway))


SessionCallDep = Annotated[SessionCall, Depends(session_call)]


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
