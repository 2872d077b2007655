"""``python -m opencouch.tools``: serve until SIGTERM, then stop cleanly (exit 0)."""

from __future__ import annotations

from functools import partial

from opencouch.runtime.lifecycle import run_service
from opencouch.runtime.settings import load_settings
from opencouch.tools.service import serve
from opencouch.tools.settings import ToolsSettings


def main() -> None:
    """Start the tools service with settings from the environment."""
    settings = load_settings(ToolsSettings)
    run_service("tools", settings, partial(serve, settings))


if __name__ == "__main__":
    main()
