"""Every event in and out of a call, with timestamps, for tests to assert on."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class EventLog:
    """Every event in and out of one call, with timestamps, for tests to assert on."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self, direction: Literal["in", "out"], transports: Sequence[str], event: Any, **flags: Any
    ) -> None:
        """Keep one event; audio payloads are shortened to their size."""
        entry: dict[str, Any] = {
            "at": time.time(),
            "direction": direction,
            "transports": list(transports),
            "event": _without_audio(event),
        }
        entry.update({key: value for key, value in flags.items() if value})
        self.entries.append(entry)


def _without_audio(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    kind = event.get("type")
    key = {"input_audio_buffer.append": "audio", "response.output_audio.delta": "delta"}.get(
        str(kind)
    )
    if key and isinstance(event.get(key), str):
        return {**event, key: f"<{len(event[key])} base64 chars>"}
    return event


def loggable_raw(text: str | bytes) -> Any:
    """A client event that failed to parse, as the log keeps it."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        return json.loads(raw)
    except ValueError:
        return {"unparsed": raw[:2000]}
