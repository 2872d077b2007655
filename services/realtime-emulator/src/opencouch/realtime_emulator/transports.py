"""What a call talks through (connections that carry its events, the WebRTC speaker) and
what its parts are handed to send events and run work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .audio import Samples

Transport = Literal["datachannel", "websocket", "sideband"]
# Sends one server event (without its ``event_id``) to the call's connections.
Emit = Callable[[dict[str, Any]], None]
# Runs work owned by the call; it is cancelled when the call ends.
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class EventSink(Protocol):
    """One connection that receives a call's server events."""

    transport: Transport

    def deliver(self, text: str) -> None:
        """Send one serialised server event, in order."""

    def close(self, *, code: int = 1000, reason: str = "", abrupt: bool = False) -> None:
        """End this connection; ``abrupt`` drops it without a goodbye."""


class AudioOutput(Protocol):
    """The WebRTC speaker: plays reply audio in real time."""

    def play(self, samples: Samples, *, response_id: str, item_id: str) -> None:
        """Queue 48 kHz samples belonging to one response item."""

    def clear(self) -> PlaybackCut | None:
        """Drop everything queued; what was playing and how far it got."""

    def stop(self) -> None:
        """No more audio, ever."""


@dataclass(frozen=True)
class PlaybackCut:
    """Where playback was when the output buffer was cleared."""

    response_id: str
    item_id: str
    played_ms: int
