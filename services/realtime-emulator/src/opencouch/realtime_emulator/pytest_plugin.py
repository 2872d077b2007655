"""pytest plugin (registered as the ``pytest11`` entry point ``realtime_emulator``).

``realtime_emulator``: the emulator served in this process on a free loopback port, one for
the whole test session, with the ``openai`` SDK's ``base_url`` and a key ready to use::

    def test_my_tool(realtime_emulator):
        client = OpenAI(api_key=realtime_emulator.api_key, base_url=realtime_emulator.base_url)

Override ``realtime_emulator_settings`` in a ``conftest.py`` to configure it (a scenario,
other keys); ``REALTIME_EMULATOR_*`` variables are honoured as by the server itself.
Imports are deferred so that merely having the plugin installed costs a test run nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .settings import Settings
    from .testing import RunningEmulator


@pytest.fixture(scope="session")
def realtime_emulator_settings() -> Settings:
    """How the ``realtime_emulator`` fixture's emulator is configured."""
    from .settings import Settings
    from .testing import API_KEY, free_port

    return Settings(host="127.0.0.1", port=free_port(), api_keys=[API_KEY])


@pytest.fixture(scope="session")
def realtime_emulator(realtime_emulator_settings: Settings) -> Iterator[RunningEmulator]:
    """An emulator running in this process for the whole test session."""
    from .testing import running_emulator

    with running_emulator(realtime_emulator_settings) as running:
        yield running
