"""A real emulator on a free loopback port, served by uvicorn in its own thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from opencouch.realtime_emulator.testing import RunningEmulator, running_emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """One emulator shared by the tests that need no special settings."""
    with running_emulator() as running:
        yield running


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for requests the SDK would not send."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as client:
        yield client
