"""``python -m opencouch.tools``: serve until SIGTERM."""

from __future__ import annotations

import asyncio

from opencouch.runtime.lifecycle import run_until_stopped
from opencouch.runtime.logs import configure_logging
from opencouch.tools.service import serve
from opencouch.tools.settings import ToolsSettings


def main() -> None:
    """Start the tools service with settings from the environment."""
    settings = ToolsSettings()
    configure_logging("tools", settings.log_level)

    async def run(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    run_until_stopped(run)


if __name__ == "__main__":
    main()
