"""Run the web client: ``python -m opencouch.web``; SIGTERM stops it cleanly."""

from __future__ import annotations

from opencouch.runtime.http import observe_http_app, serve_app
from opencouch.runtime.logs import configure_logging
from opencouch.runtime.tracing import configure_tracing, disable_tracing

from .app import create_app
from .settings import Settings


def main() -> None:
    """Serve until SIGINT or SIGTERM: open requests finish, then the process exits 0."""
    settings = Settings()
    configure_logging("opencouch-web", settings.log_level)
    # An edge like the gateway: a page request is traced (one in ten by default) on its own.
    configure_tracing("opencouch-web", settings.otlp_endpoint, edge=True)
    try:
        serve_app(
            observe_http_app(create_app(settings)),
            host=settings.host,
            port=settings.port,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )
    finally:
        disable_tracing()  # flushes the spans still buffered


if __name__ == "__main__":
    main()
