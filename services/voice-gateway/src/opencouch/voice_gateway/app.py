"""The FastAPI app: clients built in the lifespan, errors in one shape, the edge around it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any, Final

from fastapi import FastAPI
from openai import AsyncOpenAI
from starlette.types import ASGIApp

from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.metrics import VOICE_SESSIONS_ACTIVE
from opencouch.runtime.redis_client import redis_client
from opencouch.voice_gateway.abandoned import run_sweeper
from opencouch.voice_gateway.edge import GatewayEdge
from opencouch.voice_gateway.errors import install_error_handlers
from opencouch.voice_gateway.hot_routes import HotRoutes, hot_routes
from opencouch.voice_gateway.identity import IdentityVerifier
from opencouch.voice_gateway.rate_limits import RateLimits, call_limits
from opencouch.voice_gateway.refusals import RefusedSessions
from opencouch.voice_gateway.routes import API_PREFIX, health, router
from opencouch.voice_gateway.running_calls import RunningCalls
from opencouch.voice_gateway.served_tools import OwnerWatch, ServedTools
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.state import Background, Gateway
from opencouch.voice_gateway.tokens import TokenSigner
from opencouch.voice_gateway.voice_sessions import VoiceSessionStore

log = logging.getLogger(__name__)

LIVE_SESSIONS_EVERY_SECONDS: Final = 10.0
"""How often the live-sessions gauge is read from Redis: about as often as Prometheus scrapes,
and never once per scrape (``/metrics`` is served by a thread of its own, on its own port)."""


class GatewayApp(FastAPI):
    """FastAPI with the gateway's edge around all of it, FastAPI's own layers included: the
    edge (``edge.py``) is the only layer a hot route's request passes on its way in."""

    def __init__(self, *, edge: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        self._edge = edge
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        return self._edge(super().build_middleware_stack())


def create_app(settings: GatewaySettings, *, serve_hot_routes: bool = True) -> FastAPI:
    """The gateway app for ``settings``; nothing connects until it starts.

    ``serve_hot_routes=False`` leaves every route to FastAPI: what the hot routes are checked
    against."""
    tokens = TokenSigner(settings)  # a bad key configuration fails here, before serving
    identity = IdentityVerifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        identity.announce()
        async with AsyncExitStack() as stack:
            nc = await stack.enter_async_context(
                nats_connection(settings.nats_url, "opencouch-voice-gateway")
            )
            js = await ensure_events_stream(nc)
            redis = await stack.enter_async_context(
                redis_client(
                    settings.redis_url, timeout=settings.redis_timeout_seconds, connect_timeout=2
                )
            )
            realtime = AsyncOpenAI(
                api_key=settings.realtime_api_key,
                base_url=settings.realtime_base_url,
                max_retries=2,
                timeout=settings.realtime_timeout_seconds,
            )
            stack.push_async_callback(realtime.close)
            served = ServedTools(nc)
            # One id names this process on NATS: where its calls' held notes come, and where it
            # answers whether it still runs a call it claimed.
            instance_id = uuid.uuid4().hex
            owners = OwnerWatch(served)
            await owners.listen(nc, instance_id)
            watching = asyncio.create_task(owners.run(), name="owner-watch")
            running = RunningCalls(instance_id)
            await running.listen(nc)
            stack.push_async_callback(_cancelled, watching)
            background = Background()
            # Last in, first out: what runs after replies finishes before Redis and NATS close.
            stack.push_async_callback(background.drain)
            app.state.gateway = Gateway(
                settings=settings,
                nc=nc,
                js=js,
                redis=redis,
                sessions=VoiceSessionStore(
                    redis,
                    session_seconds=settings.max_session_seconds,
                    grace_seconds=settings.token_grace_seconds,
                    thread_binding_seconds=settings.thread_binding_days * 86400,
                    call_output_seconds=settings.call_output_ttl_seconds,
                    call_limits=call_limits(settings),
                ),
                tokens=tokens,
                identity=identity,
                limits=RateLimits(settings, redis.connection_pool),
                served=served,
                owners=owners,
                realtime=realtime,
                background=background,
                refused=RefusedSessions(),
                running=running,
            )
            counting = asyncio.create_task(
                _keep_counting_live_sessions(app.state.gateway), name="live-sessions-gauge"
            )
            stack.push_async_callback(_cancelled, counting)
            if settings.abandoned_sweep_seconds > 0:
                sweeper = asyncio.create_task(
                    run_sweeper(app.state.gateway, settings.abandoned_sweep_seconds),
                    name="abandoned-sweeper",
                )
                stack.push_async_callback(_cancelled, sweeper)
            yield

    hot = hot_routes(router)

    def edge(fastapi_layers: ASGIApp) -> ASGIApp:
        inner = HotRoutes(fastapi_layers, hot, fastapi=app) if serve_hot_routes else fastapi_layers
        return GatewayEdge(
            inner,
            api_prefix=API_PREFIX,
            max_body_bytes=settings.max_body_bytes,
            cors_origins=settings.cors_origins,
        )

    app = GatewayApp(
        edge=edge,
        title="OpenCouch Voice gateway",
        version="0.2.0",
        description=(
            "The public voice API. `POST /session` returns a voice-session token; every other "
            "call carries it as `Authorization: Bearer <token>`. Errors are "
            '`{"error": {"code", "message"}}` with a machine-readable code.'
        ),
        lifespan=lifespan,
        # FastAPI's own telemetry starts as soon as a tracer provider is set: spans for every
        # dependency and serialisation (a third of a tool call's tracing cost) and log records of
        # validation errors with their input. The edge makes the one server span instead.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        docs_url="/api/voice/docs",
        openapi_url="/api/voice/openapi.json",
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health)
    return app


async def count_live_sessions(gateway: Gateway) -> None:
    """Bring the live-sessions gauge up to date: every gateway reports the same total."""
    VOICE_SESSIONS_ACTIVE.set(await gateway.sessions.live_sessions())


async def _keep_counting_live_sessions(gateway: Gateway) -> None:
    while True:
        try:
            await count_live_sessions(gateway)
        except Exception as error:  # Redis away: the gauge keeps its last value meanwhile
            log.warning("live sessions not counted", extra={"error": type(error).__name__})
        await asyncio.sleep(LIVE_SESSIONS_EVERY_SECONDS)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
