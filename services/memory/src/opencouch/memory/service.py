"""Wiring: Postgres (migrated), Redis, NATS, the memory endpoints, its tools and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from pathlib import Path

import nats.errors
import psycopg
from nats.js import JetStreamContext
from redis.asyncio import Redis
from redis.exceptions import RedisError

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnClassified, TurnRecorded
from opencouch.contracts.memory import (
    CommitMemoryCandidatesRequest,
    EraseMemoryRequest,
    MemoryContextRequest,
    SessionTranscriptRequest,
    SessionTurnCountsRequest,
    ThreadHistoryRequest,
)
from opencouch.contracts.tools import ToolOwner
from opencouch.memory.candidates import CandidateStore
from opencouch.memory.deletions import StagedDeletions
from opencouch.memory.erasure import Eraser
from opencouch.memory.extraction import PhraseExtractor
from opencouch.memory.handlers import MemoryHandlers
from opencouch.memory.memory_store import MemoryStore
from opencouch.memory.memory_tools import MemoryTools
from opencouch.memory.settings import MemorySettings
from opencouch.memory.store import TranscriptStore
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.jetstream import (
    count_dead_letters,
    ensure_events_stream,
    purge_acknowledged,
)
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import DictPool, apply_migrations_async, connection_pool
from opencouch.runtime.redis_client import redis_client
from opencouch.runtime.service import Consumer, NatsService, run_nats_service
from opencouch.runtime.tools import tool_endpoints

VERSION = "0.2.0"
MIGRATIONS = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)

# Memory's queries each touch one owner's rows; starting parallel workers for them costs more
# than the whole query (measured: ~10 ms of worker start-up on a 2-core box).
SESSION_SETTINGS = {"max_parallel_workers_per_gather": "0"}


def memory_service(
    handlers: MemoryHandlers, tools: MemoryTools, settings: MemorySettings
) -> NatsService:
    """The memory service: its requests, every catalog tool it owns, and its consumers."""
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
            Endpoint(
                "session_counts",
                subjects.MEMORY_SESSION_COUNTS,
                SessionTurnCountsRequest,
                handlers.session_counts,
            ),
            Endpoint(
                "thread_turns",
                subjects.MEMORY_THREAD_TURNS,
                ThreadHistoryRequest,
                handlers.thread_turns,
            ),
            Endpoint(
                "commit_candidates",
                subjects.MEMORY_COMMIT_CANDIDATES,
                CommitMemoryCandidatesRequest,
                handlers.commit_candidates,
            ),
            Endpoint("erase", subjects.MEMORY_ERASE, EraseMemoryRequest, handlers.erase),
            *tool_endpoints(ToolOwner.MEMORY, tools.handlers()),
        ],
        consumers=[
            Consumer(
                durable=subjects.MEMORY_TURNS_CONSUMER,
                subject=subjects.TURN_RECORDED,
                event_model=TurnRecorded,
                handle=handlers.on_turn_recorded,
                redelivery=settings.turn_redelivery,
            ),
            Consumer(
                durable=subjects.MEMORY_CLASSIFICATIONS_CONSUMER,
                subject=subjects.TURN_CLASSIFIED,
                event_model=TurnClassified,
                handle=handlers.on_turn_classified,
                redelivery=settings.turn_redelivery,
            ),
        ],
    )


def build(
    settings: MemorySettings, pool: DictPool, redis: Redis, js: JetStreamContext
) -> tuple[MemoryHandlers, MemoryTools, Eraser]:
    """The handlers, tools and eraser over one pool, one Redis and one JetStream context."""
    memory = MemoryStore(pool)
    candidates = CandidateStore(redis, settings.candidate_ttl_seconds)
    eraser = Eraser(pool, js, candidates)
    handlers = MemoryHandlers(
        TranscriptStore(pool),
        memory,
        candidates,
        PhraseExtractor(),
        eraser,
    )
    tools = MemoryTools(
        memory, candidates, StagedDeletions(redis, settings.staged_deletion_ttl_seconds)
    )
    return handlers, tools, eraser


async def housekeeping(
    js: JetStreamContext, eraser: Eraser, settings: MemorySettings, stop: asyncio.Event
) -> None:
    """Keep turn text in JetStream only until every reader has acknowledged it, finish the
    erasures nobody retried, and delete what a reader gave up on after its session's erasure."""
    while not stop.is_set():
        try:
            await purge_acknowledged(js, subjects.TURN_RECORDED)
        except (nats.errors.Error, TimeoutError) as error:
            log.warning("turn purge failed", extra={"error": type(error).__name__})
        try:
            await eraser.finish_unfinished(
                older_than_seconds=settings.erasure_unfinished_after_seconds
            )
        except (nats.errors.Error, TimeoutError, RedisError, psycopg.Error) as error:
            log.warning("unfinished erasures not finished", extra={"error": type(error).__name__})
        try:
            await eraser.forget_late_dead_letters()
        except (nats.errors.Error, TimeoutError, psycopg.Error) as error:
            log.warning("late dead letters not swept", extra={"error": type(error).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.housekeeping_interval_seconds)


async def serve(settings: MemorySettings, stop: asyncio.Event) -> None:
    """Migrate, then serve memory requests and consume turns until ``stop`` is set."""
    await apply_migrations_async(settings.database_url, MIGRATIONS, owner="memory")
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            connection_pool(
                settings.database_url,
                max_size=settings.db_pool_size,
                timeout=settings.db_timeout_seconds,
                session_settings=SESSION_SETTINGS,
            )
        )
        redis = await stack.enter_async_context(
            redis_client(settings.redis_url, timeout=settings.redis_timeout_seconds)
        )
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.MEMORY_SERVICE)
        )
        js = await ensure_events_stream(nc)
        for durable in (subjects.MEMORY_TURNS_CONSUMER, subjects.MEMORY_CLASSIFICATIONS_CONSUMER):
            waiting = await count_dead_letters(js, durable)
            if waiting:
                log.warning(
                    "dead letters waiting; run python -m opencouch.memory.replay_dead_letters",
                    extra={"consumer": durable, "waiting": waiting},
                )
        handlers, tools, eraser = build(settings, pool, redis, js)
        housework = asyncio.create_task(housekeeping(js, eraser, settings, stop))
        try:
            await run_nats_service(nc, memory_service(handlers, tools, settings), settings, stop)
        finally:
            stop.set()
            await housework
