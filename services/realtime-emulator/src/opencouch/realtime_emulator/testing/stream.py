"""Raw server events from an openai SDK realtime connection, to wait on and assert about."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


class EventStream:
    """Raw server events from an openai SDK realtime connection (a WebSocket or sideband)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[Event] = []
        self.closed = asyncio.Event()
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                self.events.append(json.loads(await self.connection.recv_bytes()))
                self._changed.set()
        except Exception as error:
            self.failure = error
            self.closed.set()
            self._changed.set()

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Event], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 30,
    ) -> Event:
        """The first event of ``kind`` (from index ``after``) matching ``where``."""

        async def wait() -> Event:
            while True:
                for event in self.events[after:]:
                    if event["type"] == kind and where(event):
                        return event
                if self.closed.is_set():
                    raise AssertionError(f"connection closed before {kind}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def of_type(self, kind: str) -> list[Event]:
        """Every event of ``kind`` seen so far."""
        return [e for e in self.events if e.get("type") == kind]

    async def stop(self) -> None:
        self._task.cancel()
