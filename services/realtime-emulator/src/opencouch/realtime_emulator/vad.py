"""Energy-based voice activity detection, configured like OpenAI's ``server_vad``.

The session's ``threshold`` (0..1) maps onto a loudness floor: 0.5 means frames louder than
-40 dBFS count as speech. A few voiced frames in a row start speech, so clicks do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import Samples, rms_dbfs

FRAME_MS = 20
# Voiced audio needed before speech counts as started.
_ONSET_MS = 60
# How long semantic_vad waits by eagerness; it has no semantics here, only patience.
_SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 700, "auto": 700, "high": 400}


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began; ``audio_start_ms`` already includes the prefix padding."""

    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """Speech ended; ``audio_end_ms`` includes the trailing silence, as OpenAI reports it."""

    audio_end_ms: int


VadEvent = SpeechStarted | SpeechStopped


def threshold_dbfs(threshold: float) -> float:
    """The loudness floor for a 0..1 ``threshold``: higher needs louder speech."""
    return -70.0 + 60.0 * min(max(threshold, 0.0), 1.0)


class EnergyVad:
    """Feeds on mono samples at any rate; reports speech start and stop on the session clock."""

    def __init__(self, turn_detection: dict[str, Any]) -> None:
        self.configure(turn_detection)
        self.position_ms = 0.0
        self.speaking = False
        self._pending: Samples = np.zeros(0, dtype=np.int16)
        self._pending_rate = 0
        self._voiced_run_ms = 0.0
        self._silent_run_ms = 0.0
        self._onset_ms = 0.0

    def configure(self, turn_detection: dict[str, Any]) -> None:
        """Apply a (possibly updated) ``turn_detection`` config."""
        if turn_detection.get("type") == "semantic_vad":
            eagerness = turn_detection.get("eagerness", "auto")
            self.silence_ms = float(_SEMANTIC_SILENCE_MS.get(eagerness, 700))
            self.prefix_ms = 300.0
            self.level_dbfs = threshold_dbfs(0.5)
        else:
            self.silence_ms = float(turn_detection.get("silence_duration_ms", 200))
            self.prefix_ms = float(turn_detection.get("prefix_padding_ms", 300))
            self.level_dbfs = threshold_dbfs(float(turn_detection.get("threshold", 0.5)))

    def feed(self, samples: Samples, rate: int) -> list[VadEvent]:
        """Process more audio; returns what changed, in order."""
        if rate != self._pending_rate:
            self._pending = np.zeros(0, dtype=np.int16)
            self._pending_rate = rate
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        frame = rate * FRAME_MS // 1000
        events: list[VadEvent] = []
        whole = data.size - data.size % frame
        for start in range(0, whole, frame):
            event = self._frame(data[start : start + frame])
            if event is not None:
                events.append(event)
        self._pending = data[whole:].copy()
        return events

    def _frame(self, frame: Samples) -> VadEvent | None:
        voiced = rms_dbfs(frame) > self.level_dbfs
        frame_start = self.position_ms
        self.position_ms += FRAME_MS
        if not self.speaking:
            if voiced:
                if self._voiced_run_ms == 0:
                    self._onset_ms = frame_start
                self._voiced_run_ms += FRAME_MS
                if self._voiced_run_ms >= _ONSET_MS:
                    self.speaking = True
                    self._silent_run_ms = 0
                    return SpeechStarted(round(max(0.0, self._onset_ms - self.prefix_ms)))
            else:
                self._voiced_run_ms = 0
            return None
        if voiced:
            self._silent_run_ms = 0
            return None
        self._silent_run_ms += FRAME_MS
        if self._silent_run_ms >= self.silence_ms:
            self.speaking = False
            self._voiced_run_ms = 0
            return SpeechStopped(round(self.position_ms))
        return None

    def reset(self) -> None:
        """Forget a speech segment in progress (``input_audio_buffer.clear``)."""
        self.speaking = False
        self._voiced_run_ms = 0
        self._silent_run_ms = 0
