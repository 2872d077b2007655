"""The emulator's own pytest plugin serves one emulator for the tests that need no special
settings; ``emulator`` is that one, under the name these tests always used."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from opencouch.realtime_emulator.testing import RunningEmulator


@pytest.fixture(scope="session")
def emulator(realtime_emulator: RunningEmulator) -> RunningEmulator:
    """One emulator shared by the tests that need no special settings."""
    return realtime_emulator


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for requests the SDK would not send."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as client:
        yield client
