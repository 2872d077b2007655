"""Fixtures for the tools service: its content, its stores, and the service itself on NATS.

Every tool output a test gets through ``ToolsHarness.call`` is checked for phone numbers and
links that are not in the vetted crisis data or the cited corpus: the proof that no tool invents
a contact runs over every test, not only its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from opencouch.runtime.postgres import DictPool, apply_migrations_async, connection_pool
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.service import MIGRATIONS, Content
from opencouch.tools.session_state import SessionState
from opencouch.tools.store import ToolsStore
from opencouch.tools.testing import (
    ToolsHarness,
    VettedContacts,
    handlers_for,
    serving,
    vetted_from_data,
)

ServeTools = Callable[
    [ToolHandlers, ToolsStore, SessionState], AbstractAsyncContextManager[ToolsHarness]
]


@pytest.fixture(scope="session")
def content() -> Content:
    """The packaged content, loaded and checked once."""
    return Content.load(None)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tools_pool(database_url: str) -> AsyncIterator[DictPool]:
    """A pool on the test database, with the tools schema migrated."""
    await apply_migrations_async(database_url, MIGRATIONS, owner="tools")
    async with connection_pool(database_url, max_size=8) as pool:
        yield pool


@pytest.fixture(scope="session")
def tools_store(tools_pool: DictPool) -> ToolsStore:
    """The tools store, waiting up to two seconds for a connection."""
    return ToolsStore(tools_pool, timeout=2.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A Redis client for the test session."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vetted(tools_store: ToolsStore) -> VettedContacts:
    """The contacts any tool output may contain."""
    return vetted_from_data(await tools_store.corpus_urls())


@pytest_asyncio.fixture(loop_scope="session")
async def tools(
    nats_url: str,
    content: Content,
    tools_store: ToolsStore,
    redis_client: Redis,
    vetted: VettedContacts,
) -> AsyncIterator[ToolsHarness]:
    """The tools service on NATS for one test, over the real stores."""
    state = SessionState(redis_client, 3600)
    handlers = handlers_for(content, tools_store, state)
    async with serving(nats_url, handlers, tools_store, state) as client:
        yield ToolsHarness(client, vetted)


@pytest.fixture
def serve_tools(nats_url: str, vetted: VettedContacts) -> ServeTools:
    """Run the tools service with handlers of the test's choosing (a degraded store, say).

    Use it instead of ``tools`` in a test, never with it: both serve the same subjects.
    """

    @asynccontextmanager
    async def run(
        handlers: ToolHandlers, store: ToolsStore, state: SessionState
    ) -> AsyncIterator[ToolsHarness]:
        async with serving(nats_url, handlers, store, state) as client:
            yield ToolsHarness(client, vetted)

    return run
