"""Wiring: Postgres (migrated), NATS, the status service and the session-end consumer."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from opencouch.contracts import subjects
from opencouch.contracts.events import SessionEnded
from opencouch.contracts.finalizer import FinalizationStatusRequest
from opencouch.finalizer.handlers import FinalizerHandlers
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import FinalizationStore
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.health import write_id_file
from opencouch.runtime.jetstream import consume_events, ensure_events_stream
from opencouch.runtime.lifecycle import serve_until_stopped
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import apply_migrations_async, connection_pool

log = logging.getLogger(__name__)
VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")


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
        service = await start_service(
            nc,
            name=subjects.FINALIZER_SERVICE,
            version=VERSION,
            description="Session finalization status",
            endpoints=[
                Endpoint(
                    "status",
                    subjects.FINALIZER_STATUS,
                    FinalizationStatusRequest,
                    handlers.status,
                ),
            ],
            max_concurrency=settings.max_concurrency,
        )
        stack.push_async_callback(service.stop)
        consumer = asyncio.create_task(
            consume_events(
                js,
                subject=subjects.SESSION_ENDED,
                durable=subjects.FINALIZER_SESSION_END_CONSUMER,
                event_model=SessionEnded,
                handle=handlers.on_session_ended,
                on_give_up=handlers.on_give_up,
                stop=stop,
                max_deliver=settings.max_deliveries,
            )
        )
        write_id_file(settings.id_file, service.id)
        log.info("finalizer ready", extra={"instance": service.id})
        await serve_until_stopped(stop, consumer)
        log.info("finalizer stopping")
