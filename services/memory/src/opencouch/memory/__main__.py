"""``python -m opencouch.memory``: serve until SIGTERM, then stop cleanly (exit 0)."""

from __future__ import annotations

from functools import partial

from opencouch.memory.service import serve
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.lifecycle import run_service
from opencouch.runtime.settings import load_settings


def main() -> None:
    """Start the memory service with settings from the environment."""
    settings = load_settings(MemorySettings)
    run_service("memory", settings, partial(serve, settings))


if __name__ == "__main__":
    main()
