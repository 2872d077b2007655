"""Wiring: Postgres (migrated), NATS, the memory endpoints, its tools and the turn consumer."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnRecorded
from opencouch.contracts.memory import MemoryContextRequest, SessionTranscriptRequest
from opencouch.contracts.tools import ToolOwner
from opencouch.memory.handlers import MemoryHandlers
from opencouch.memory.settings import MemorySettings
from opencouch.memory.store import MemoryStore
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import apply_migrations_async, connection_pool
from opencouch.runtime.service import Consumer, NatsService, run_nats_service
from opencouch.runtime.tools import ToolHandler, tool_endpoints

VERSION = "0.1.0"
MIGRATIONS = Path(__file__).with_name("migrations")


def memory_service(handlers: MemoryHandlers) -> NatsService:
    """The memory service: its requests, every catalog tool it owns, and the turn consumer."""
    tools: dict[str, ToolHandler] = {"show_memory_status": handlers.show_memory_status}
    return NatsService(
        name=subjects.MEMORY_SERVICE,
        version=VERSION,
        description="Memory modes, durable memory, recall and transcripts",
        endpoints=[
            Endpoint(
                "context", subjects.MEMORY_CONTEXT, MemoryContextRequest, handlers.memory_context
            ),
            Endpoint(
                "session_transcript",
                subjects.MEMORY_SESSION_TRANSCRIPT,
                SessionTranscriptRequest,
                handlers.session_transcript,
            ),
            *tool_endpoints(ToolOwner.MEMORY, tools),
        ],
        consumers=[
            Consumer(
                durable=subjects.MEMORY_TURNS_CONSUMER,
                subject=subjects.TURN_RECORDED,
                event_model=TurnRecorded,
                handle=handlers.on_turn_recorded,
            )
        ],
    )


async def serve(settings: MemorySettings, stop: asyncio.Event) -> None:
    """Migrate, then serve memory requests and store turns until ``stop`` is set."""
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="memory")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=settings.db_pool_size)
        )
        service = memory_service(MemoryHandlers(MemoryStore(pool)))
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.MEMORY_SERVICE)
        )
        await run_nats_service(nc, service, settings, stop)
