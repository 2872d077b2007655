"""``python -m opencouch.finalizer``: serve until SIGTERM, then stop cleanly (exit 0)."""

from __future__ import annotations

from functools import partial

from opencouch.finalizer.service import serve
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.runtime.lifecycle import run_service
from opencouch.runtime.settings import load_settings


def main() -> None:
    """Start the finalizer service with settings from the environment."""
    settings = load_settings(FinalizerSettings)
    run_service("finalizer", settings, partial(serve, settings))


if __name__ == "__main__":
    main()
