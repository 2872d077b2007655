"""Fixtures: the finalizer running in this test process on real NATS and Postgres, a fake of
memory's three endpoints it talks to, a webhook receiver, and ways to look at what it kept.

Only one finalizer runs at a time here (each ``finalizer`` block starts and stops its own), so
the durable consumers are never shared with another test's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from opencouch.finalizer.service import MIGRATIONS, serve
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.testing import (
    FakeMemory,
    FinalizerClient,
    RunFinalizer,
    WebhookReceiver,
    eventually,
)
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.postgres import apply_migrations


@pytest.fixture(scope="module")
def migrated(database_url: str) -> str:
    apply_migrations(database_url, MIGRATIONS, owner="finalizer")
    return database_url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[tuple[NatsClient, JetStreamContext]]:
    nc = await nats.connect(nats_url)
    try:
        yield nc, await ensure_events_stream(nc)
    finally:
        await nc.close()


@pytest.fixture
async def memory(bus: tuple[NatsClient, JetStreamContext]) -> AsyncIterator[FakeMemory]:
    """Memory as the finalizer sees it, holding what each test puts in it."""
    fake = FakeMemory()
    await fake.start(bus[0])
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def run_finalizer(
    bus: tuple[NatsClient, JetStreamContext], nats_url: str, migrated: str, tmp_path: Path
) -> RunFinalizer:
    """``async with run_finalizer(**settings) as finalizer``: one running in this process."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[FinalizerClient]:
        values: dict[str, Any] = {
            "nats_url": nats_url,
            "database_url": migrated,
            "id_file": tmp_path / f"finalizer-{uuid.uuid4().hex[:6]}.id",
            "summariser": "extractive",
            "retry_first_delay_seconds": 0.05,
            "retry_max_delay_seconds": 0.2,
            "memory_wait_seconds": 60.0,
            "max_deliveries": 1000,
            "ack_wait_seconds": 5.0,
            "webhook_retry_first_delay_seconds": 0.1,
            "webhook_retry_max_delay_seconds": 0.2,
            "webhook_poll_seconds": 0.2,
            **overrides,
        }
        settings = FinalizerSettings(**values)
        stop = asyncio.Event()
        running = asyncio.create_task(serve(settings, stop))

        async def ready() -> bool:
            if running.done():
                running.result()  # raises what stopped it
            return settings.health_id_file.exists()

        try:
            await eventually(ready)
            yield FinalizerClient(settings, bus[0], bus[1], migrated)
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)

    return run
