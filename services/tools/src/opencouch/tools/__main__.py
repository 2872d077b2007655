"""``python -m opencouch.tools``: serve until SIGTERM, then stop cleanly (exit 0)."""

from __future__ import annotations

from functools import partial

from opencouch.tools.places import read_cities_ahead


def main() -> None:
    """Start the tools service with settings from the environment."""
    # The gazetteer's cities are listed by a child process (about half a second of CPU): it
    # starts first, so it runs while this process imports the service and its libraries.
    read_cities_ahead()
    from opencouch.runtime.lifecycle import run_service
    from opencouch.runtime.settings import load_settings
    from opencouch.tools.service import serve
    from opencouch.tools.settings import ToolsSettings

    settings = load_settings(ToolsSettings)
    run_service("tools", settings, partial(serve, settings))


if __name__ == "__main__":
    main()
