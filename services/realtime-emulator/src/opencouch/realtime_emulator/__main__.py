"""Run the emulator: ``python -m opencouch.realtime_emulator``; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Iterator

import uvicorn

from .app import create_app
from .settings import Settings

_SECRET = re.compile(r"\b(ek|sk)-?_?[A-Za-z0-9_-]{8,}")


class RedactSecrets(logging.Filter):
    """Mask keys in log lines: the access log would otherwise print
    ``/_emulator/client_secrets/ek_...`` paths."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments; never drop it."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET.sub(r"\1_***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutdown, which
    would turn a clean stop into exit status -15."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM; open requests finish, then the lifespan ends every call."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # No WebSocket pings: the Realtime protocol has no keep-alive of its own, and a busy
        # machine must not drop a quiet sideband.
        ws_ping_interval=None,
        timeout_graceful_shutdown=5,
    )
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactSecrets())
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    await server.serve()


def main() -> None:
    """Entry point for ``python -m``."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
