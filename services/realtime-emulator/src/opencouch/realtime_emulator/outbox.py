"""Server events out to every connection of a call, with the call's faults, each one logged."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from .eventlog import EventLog
from .faults import Faults
from .transports import EventSink

# Events a WebRTC call sends before its data channel opens are held for it, up to this many.
_HELD_FOR_DATACHANNEL = 1000


class Outbox:
    """The connections attached to a call (data channel, sidebands or the WebSocket)."""

    def __init__(self, log: EventLog, faults: Faults, *, hold_for_datachannel: bool) -> None:
        self._log = log
        self._faults = faults
        self._sinks: list[EventSink] = []
        self._holding = hold_for_datachannel
        self._held: deque[str] = deque(maxlen=_HELD_FOR_DATACHANNEL)

    @property
    def transports(self) -> list[str]:
        """The kinds of connection attached right now."""
        return [sink.transport for sink in self._sinks]

    def attach(self, sink: EventSink) -> None:
        """Add a connection."""
        self._sinks.append(sink)

    def release_held(self, sink: EventSink) -> None:
        """Give the data channel, once it opens, what was sent before it did."""
        if sink.transport == "datachannel" and self._holding:
            self._holding = False
            while self._held:
                sink.deliver(self._held.popleft())

    def detach(self, sink: EventSink) -> None:
        """Forget a connection that went away."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def send(self, event: dict[str, Any], *, only: EventSink | None = None) -> None:
        """Deliver one event (with its ``event_id``) to every connection, or to ``only``."""
        kind = str(event["type"])
        targets = [only] if only is not None else list(self._sinks)
        dropped = kind in self._faults.drop
        duplicated = kind in self._faults.duplicate
        self._log.record(
            "out",
            [sink.transport for sink in targets],
            event,
            dropped=dropped,
            duplicated=duplicated and not dropped,
        )
        if dropped:
            return
        text = json.dumps(event, separators=(",", ":"))
        for _ in range(2 if duplicated else 1):
            for sink in targets:
                sink.deliver(text)
            if only is None and self._holding:
                self._held.append(text)

    def close_all(self, reason: str, *, abrupt: bool) -> None:
        """Close every connection (``abrupt``: without a goodbye)."""
        for sink in list(self._sinks):
            sink.close(code=1000, reason=reason, abrupt=abrupt)
        self._sinks.clear()
