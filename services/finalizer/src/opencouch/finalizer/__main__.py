"""``python -m opencouch.finalizer``: serve until SIGTERM."""

from __future__ import annotations

import asyncio

from opencouch.finalizer.service import serve
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.runtime.lifecycle import run_until_stopped
from opencouch.runtime.logs import configure_logging


def main() -> None:
    """Start the finalizer with settings from the environment."""
    settings = FinalizerSettings()
    configure_logging("finalizer", settings.log_level)

    async def run(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    run_until_stopped(run)


if __name__ == "__main__":
    main()
