"""The FastAPI app: clients built in the lifespan, errors in one shape, CORS for the web page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from openai import AsyncOpenAI
from redis.asyncio import Redis

from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.voice_gateway.errors import install_error_handlers
from opencouch.voice_gateway.routes import health, router
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.voice_sessions import VoiceSessionStore


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for ``settings``; nothing connects until it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            nc = await stack.enter_async_context(
                nats_connection(settings.nats_url, "opencouch-voice-gateway")
            )
            js = await ensure_events_stream(nc)
            redis = Redis.from_url(settings.redis_url)
            stack.push_async_callback(redis.aclose)
            realtime = AsyncOpenAI(
                api_key=settings.realtime_api_key,
                base_url=settings.realtime_base_url,
                max_retries=2,
                timeout=10.0,
            )
            stack.push_async_callback(realtime.close)
            app.state.gateway = Gateway(
                settings=settings,
                nc=nc,
                js=js,
                redis=redis,
                sessions=VoiceSessionStore(redis, settings.session_ttl_seconds),
                realtime=realtime,
            )
            yield

    app = FastAPI(
        title="OpenCouch Voice gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/voice/docs",
        openapi_url="/api/voice/openapi.json",
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health)
    return app
