"""Run the emulator: ``opencouch-realtime-emulator`` or ``python -m opencouch.realtime_emulator``.

Settings come from ``REALTIME_EMULATOR_*`` variables; command-line options win over them.
SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import re
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
    would turn a clean stop into exit status -15.

    Once it serves, the heap its start built (the app, aiortc, PyAV, numpy) is frozen out of
    the garbage collector (``gc.freeze``): each full collection walked all of it, about 60 ms
    with the event loop held, three frames of a call's audio."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            gc.collect()  # what the start left as garbage is freed, not kept for good
            gc.freeze()


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


def settings_from(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by command-line options."""
    parser = argparse.ArgumentParser(
        prog="opencouch-realtime-emulator",
        description="An offline, wire-compatible stand-in for the OpenAI Realtime API.",
        epilog="Every option can also be set as REALTIME_EMULATOR_<NAME> in the environment.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8090)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="a standard key to accept (repeatable; default sk-emulator-local)",
    )
    parser.add_argument("--scenario", type=Path, help="YAML or JSON scenario file")
    parser.add_argument("--speech", choices=["auto", "espeak", "tone"], help="reply voice")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    given = vars(parser.parse_args(argv))
    overrides: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    return Settings(**overrides)


def main() -> None:
    """Entry point of the console script and of ``python -m``."""
    settings = settings_from()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
