"""The FastAPI app: clients built in the lifespan, errors in one shape, limits and headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from openai import AsyncOpenAI
from redis.asyncio import Redis

from opencouch.runtime.http import RequestObserver
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.metrics import VOICE_SESSIONS_ACTIVE
from opencouch.voice_gateway.abandoned import run_sweeper
from opencouch.voice_gateway.errors import install_error_handlers
from opencouch.voice_gateway.hot_routes import HotRoutes, hot_routes
from opencouch.voice_gateway.identity import IdentityVerifier
from opencouch.voice_gateway.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from opencouch.voice_gateway.rate_limits import RateLimits, call_limits
from opencouch.voice_gateway.routes import API_PREFIX, health, router
from opencouch.voice_gateway.served_tools import ServedTools
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.state import Background, Gateway
from opencouch.voice_gateway.tokens import TokenSigner
from opencouch.voice_gateway.voice_sessions import VoiceSessionStore


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for ``settings``; nothing connects until it starts."""
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
            redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
            stack.push_async_callback(redis.aclose)
            realtime = AsyncOpenAI(
                api_key=settings.realtime_api_key,
                base_url=settings.realtime_base_url,
                max_retries=2,
                timeout=settings.realtime_timeout_seconds,
            )
            stack.push_async_callback(realtime.close)
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
                served=ServedTools(nc),
                realtime=realtime,
                background=background,
            )
            if settings.abandoned_sweep_seconds > 0:
                sweeper = asyncio.create_task(
                    run_sweeper(app.state.gateway, settings.abandoned_sweep_seconds),
                    name="abandoned-sweeper",
                )
                stack.push_async_callback(_cancelled, sweeper)
            yield

    app = FastAPI(
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
        # validation errors with their input. RequestObserver makes the one server span instead.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        docs_url="/api/voice/docs",
        openapi_url="/api/voice/openapi.json",
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health)
    # Added innermost first: headers wrap CORS, which wraps the body limit, so even a 413 is
    # readable by the page and carries the security headers. The hot routes are served inside
    # all three, as the router's routes are.
    app.add_middleware(HotRoutes, routes=hot_routes(router), fastapi=app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type", "Authorization", "traceparent", "tracestate"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware, api_prefix=API_PREFIX)
    _observe(app)
    return app


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def _observe(app: FastAPI) -> None:
    """``/metrics``, request timing and, while tracing is on, a span per request that continues
    the page's ``traceparent``. Outermost, so every request is seen, refused ones too."""

    async def count_live_sessions() -> None:
        gateway: Gateway | None = getattr(app.state, "gateway", None)
        if gateway is not None:
            VOICE_SESSIONS_ACTIVE.set(await gateway.sessions.live_sessions())

    app.add_middleware(RequestObserver, before_scrape=count_live_sessions)
