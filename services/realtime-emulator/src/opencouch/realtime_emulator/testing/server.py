"""The real emulator app, served in this process on a free port, and its event logs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from ephemeral_port_reserve import reserve

from ..app import create_app
from ..settings import Settings

API_KEY = "sk-emulator-local"
Event = dict[str, Any]


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A TCP port for a server to bind, never one this process was given before.

    The port is held in TIME_WAIT (``ephemeral_port_reserve``) for a minute: no socket asking
    for any free port gets it meanwhile, while a server binding it by number with
    ``SO_REUSEADDR`` (uvicorn does) takes it at once.
    """
    while True:
        port: int = reserve("127.0.0.1")
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


@dataclass
class RunningEmulator:
    """Where an in-process emulator listens."""

    url: str
    settings: Settings

    @property
    def base_url(self) -> str:
        """What the openai SDK takes as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def api_key(self) -> str:
        """A standard key the emulator accepts."""
        return self.settings.api_keys[0]


@contextlib.contextmanager
def running_emulator(settings: Settings | None = None) -> Iterator[RunningEmulator]:
    """Serve the app with uvicorn on its own loop and thread, so a test's loop never starves it."""
    settings = settings or Settings(host="127.0.0.1", port=free_port(), api_keys=[API_KEY])
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ws_ping_interval=None,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("emulator did not start")
        time.sleep(0.02)
    try:
        yield RunningEmulator(url=f"http://{settings.host}:{settings.port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def fetch_log(emulator: RunningEmulator, call_or_session_id: str) -> dict[str, Any]:
    """The emulator's event log of a call (by call id) or WebSocket session (by session id)."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as client:
        if call_or_session_id.startswith("rtc_"):
            response = await client.get(
                f"/v1/realtime/calls/{call_or_session_id}/log",
                headers={"Authorization": f"Bearer {emulator.settings.api_keys[0]}"},
            )
        else:
            response = await client.get(f"/_emulator/sessions/{call_or_session_id}/log")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def accepted_client_events(log: dict[str, Any]) -> list[Event]:
    """Client events the emulator accepted (not answered with an error)."""
    return [
        entry["event"]
        for entry in log["log"]
        if entry["direction"] == "in" and "rejected" not in entry
    ]


def sent_server_events(log: dict[str, Any]) -> list[Event]:
    """Every server event the emulator sent (or meant to send) in a call."""
    return [entry["event"] for entry in log["log"] if entry["direction"] == "out"]


def spec_checkable(event: Event) -> Event:
    """``event`` as it can be checked against the official ``RealtimeClientEvent`` schema.

    The spec types ``response.conversation`` as ``oneOf`` an enum ``["auto", "none"]`` and a
    plain string, so the documented values match both branches and fail ``oneOf``. Such an
    event gets an arbitrary conversation id instead, which matches exactly one branch.
    """
    conversation = (event.get("response") or {}).get("conversation")
    if event.get("type") == "response.create" and conversation in ("auto", "none"):
        return {**event, "response": {**event["response"], "conversation": "conv_spec_check"}}
    return event
