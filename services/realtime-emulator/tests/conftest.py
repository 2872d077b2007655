"""The emulator's own pytest plugin serves one emulator for the tests that need no special
settings; ``emulator`` is that one, under the name these tests always used."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from opencouch.realtime_emulator.settings import Settings
from opencouch.realtime_emulator.testing import (
    API_KEY,
    RunningEmulator,
    free_port,
    running_emulator,
)

# The product's scenario (OpenCouch's keyword rules and phrases), as the stack gives it.
PRODUCT_SCENARIO_FILE = Path(__file__).parents[3] / "config/emulator/opencouch-companion.yaml"


@pytest.fixture(scope="session")
def emulator(realtime_emulator: RunningEmulator) -> RunningEmulator:
    """One emulator shared by the tests that need no special settings."""
    return realtime_emulator


@pytest.fixture(scope="session")
def product_emulator() -> Iterator[RunningEmulator]:
    """An emulator started as the stack starts it, following the product's scenario file.

    Not an inline header: the scenario outgrew the 8 KB a WebSocket request's header line may
    carry (see the README's Scenarios)."""
    settings = Settings(
        host="127.0.0.1", port=free_port(), api_keys=[API_KEY], scenario=PRODUCT_SCENARIO_FILE
    )
    with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def http(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for requests the SDK would not send."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as client:
        yield client
