"""``python -m opencouch.voice_gateway``: serve the API until SIGTERM."""

from __future__ import annotations

from opencouch.runtime.http import serve_app
from opencouch.runtime.logs import configure_logging
from opencouch.runtime.settings import load_settings
from opencouch.runtime.tracing import configure_tracing, disable_tracing
from opencouch.voice_gateway.app import create_app
from opencouch.voice_gateway.settings import GatewaySettings


def main() -> None:
    """Start the gateway with settings from the environment; serve until SIGTERM."""
    settings = load_settings(GatewaySettings)
    configure_logging("voice-gateway", settings.log_level)
    configure_tracing("opencouch-voice-gateway", settings.otlp_endpoint, edge=True)
    try:
        serve_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            metrics_host=settings.metrics_host,
            metrics_port=settings.serving_metrics_port,
        )
    finally:
        disable_tracing()  # flushes the spans still buffered


if __name__ == "__main__":
    main()
