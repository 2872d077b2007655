"""Run the web client: ``python -m opencouch.web``; SIGTERM stops it cleanly."""

from __future__ import annotations

import uvicorn

from opencouch.runtime.logs import configure_logging

from .app import create_app
from .settings import Settings


def main() -> None:
    """Serve until SIGINT or SIGTERM; uvicorn finishes open requests, then exits."""
    settings = Settings()
    configure_logging("opencouch-web", settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # Our JSON logging is already set up; uvicorn's loggers propagate into it.
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.access_log,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
