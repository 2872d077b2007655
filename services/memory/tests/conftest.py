"""Fixtures: the memory service running in this test process, and a client for it.

``memory`` is module-scoped; the process-level tests start ``python -m opencouch.memory``
instead. Never both at once: they would share the durable consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest

from opencouch.contracts import subjects
from opencouch.memory.service import MIGRATIONS, serve
from opencouch.memory.settings import MemorySettings
from opencouch.memory.testing import Conversation, MemoryClient, eventually
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.postgres import apply_migrations
from opencouch.testing.processes import ServiceProcess, nats_ping, start_service

StartMemory = Callable[..., ServiceProcess]
"""``start_memory(database_url=..., **MEMORY_settings)``: a healthy memory service process."""


@pytest.fixture(scope="module")
def migrated(database_url: str) -> str:
    apply_migrations(database_url, MIGRATIONS, owner="memory")
    return database_url


@pytest.fixture(scope="module")
async def memory(
    nats_url: str, redis_url: str, migrated: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MemoryClient]:
    """The memory service running in this process, and a client for it."""
    settings = MemorySettings(
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=migrated,
        id_file=tmp_path_factory.mktemp("memory") / "memory.id",
        turn_retry_first_delay_seconds=0.1,
        turn_retry_max_delay_seconds=0.5,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(serve(settings, stop))
    nc = await nats.connect(nats_url)
    js = await ensure_events_stream(nc)
    client = MemoryClient(nc, js, migrated)
    try:

        async def ready() -> bool:
            if running.done():
                running.result()  # raises what stopped it
            return settings.health_id_file.exists()

        await eventually(ready)
        yield client
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await nc.close()


@pytest.fixture
def conversation() -> Conversation:
    return Conversation()


@pytest.fixture
def start_memory(
    nats_url: str, redis_url: str, migrated: str, tmp_path: Path
) -> Iterator[StartMemory]:
    """Start ``python -m opencouch.memory`` processes; each is stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(database_url: str | None = None, **settings: str) -> ServiceProcess:
        id_file = tmp_path / f"memory-{len(started)}.id"
        env = {
            "MEMORY_NATS_URL": nats_url,
            "MEMORY_REDIS_URL": redis_url,
            "MEMORY_DATABASE_URL": database_url or migrated,
            "MEMORY_ID_FILE": str(id_file),
            **{f"MEMORY_{name.upper()}": value for name, value in settings.items()},
        }
        process = start_service(
            "memory",
            "opencouch.memory",
            env,
            tmp_path,
            nats_ping(subjects.MEMORY_SERVICE, id_file, nats_url),
        )
        started.append(process)
        process.wait_healthy()
        return process

    yield start
    for process in started:
        process.stop()
