"""Wiring: Postgres (migrated), NATS, the status endpoint and the session-end consumer."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from opencouch.contracts import subjects
from opencouch.contracts.events import SessionEnded
from opencouch.contracts.finalizer import FinalizationStatusRequest
from opencouch.finalizer.handlers import FinalizerHandlers
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import FinalizationStore
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.jetstream import Redelivery, ensure_events_stream
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import apply_migrations_async, connection_pool
from opencouch.runtime.service import Consumer, NatsService, run_nats_service

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")


def finalizer_service(handlers: FinalizerHandlers, settings: FinalizerSettings) -> NatsService:
    """The finalizer: the status endpoint and the session-end consumer."""
    return NatsService(
        name=subjects.FINALIZER_SERVICE,
        version=VERSION,
        description="Session finalization and its status",
        endpoints=[
            Endpoint(
                "status", subjects.FINALIZER_STATUS, FinalizationStatusRequest, handlers.status
            ),
        ],
        consumers=[
            Consumer(
                durable=subjects.FINALIZER_SESSION_END_CONSUMER,
                subject=subjects.SESSION_ENDED,
                event_model=SessionEnded,
                handle=handlers.on_session_ended,
                on_give_up=handlers.on_give_up,
                redelivery=Redelivery(max_deliver=settings.max_deliveries),
            )
        ],
    )


async def serve(settings: FinalizerSettings, stop: asyncio.Event) -> None:
    """Migrate, then finalize ended sessions and answer status until ``stop`` is set."""
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="finalizer")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(connection_pool(settings.database_url))
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.FINALIZER_SERVICE)
        )
        js = await ensure_events_stream(nc)
        handlers = FinalizerHandlers(FinalizationStore(pool), nc, js, settings)
        await run_nats_service(nc, finalizer_service(handlers, settings), settings, stop)
