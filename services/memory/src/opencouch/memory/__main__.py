"""``python -m opencouch.memory``: serve until SIGTERM."""

from __future__ import annotations

import asyncio

from opencouch.memory.service import serve
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.lifecycle import run_until_stopped
from opencouch.runtime.logs import configure_logging


def main() -> None:
    """Start the memory service with settings from the environment."""
    settings = MemorySettings()
    configure_logging("memory", settings.log_level)

    async def run(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    run_until_stopped(run)


if __name__ == "__main__":
    main()
