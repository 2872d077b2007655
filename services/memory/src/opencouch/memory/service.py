"""Wiring: Postgres (migrated), NATS, the micro service and the turn consumer."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnRecorded
from opencouch.contracts.memory import MemoryContextRequest, SessionTranscriptRequest
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallRequest
from opencouch.memory.handlers import MemoryHandlers
from opencouch.memory.settings import MemorySettings
from opencouch.memory.store import MemoryStore
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.health import write_id_file
from opencouch.runtime.jetstream import consume_events, ensure_events_stream
from opencouch.runtime.lifecycle import serve_until_stopped
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import apply_migrations_async, connection_pool

log = logging.getLogger(__name__)
VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")


async def serve(settings: MemorySettings, stop: asyncio.Event) -> None:
    """Migrate, then serve memory requests and store turns until ``stop`` is set."""
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="memory")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=settings.db_pool_size)
        )
        handlers = MemoryHandlers(MemoryStore(pool))
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.MEMORY_SERVICE)
        )
        js = await ensure_events_stream(nc)
        service = await start_service(
            nc,
            name=subjects.MEMORY_SERVICE,
            version=VERSION,
            description="Memory modes, durable memory, recall and transcripts",
            endpoints=[
                Endpoint(
                    "context",
                    subjects.MEMORY_CONTEXT,
                    MemoryContextRequest,
                    handlers.memory_context,
                ),
                Endpoint(
                    "session_transcript",
                    subjects.MEMORY_SESSION_TRANSCRIPT,
                    SessionTranscriptRequest,
                    handlers.session_transcript,
                ),
                Endpoint(
                    "show_memory_status",
                    TOOL_CATALOG["show_memory_status"].subject,
                    ToolCallRequest,
                    handlers.show_memory_status,
                ),
            ],
            max_concurrency=settings.max_concurrency,
        )
        stack.push_async_callback(service.stop)
        consumer = asyncio.create_task(
            consume_events(
                js,
                subject=subjects.TURN_RECORDED,
                durable=subjects.MEMORY_TURNS_CONSUMER,
                event_model=TurnRecorded,
                handle=handlers.on_turn_recorded,
                stop=stop,
            )
        )
        write_id_file(settings.id_file, service.id)
        log.info("memory service ready", extra={"instance": service.id})
        await serve_until_stopped(stop, consumer)
        log.info("memory service stopping")
