"""The assistant's voice over WebRTC: what the speaker reports, and clearing it on barge-in.

OpenAI sends ``output_audio_buffer.stopped`` only after ``response.done``, even when the
audio drained first; this part holds the event back until then.
"""

from __future__ import annotations

from collections.abc import Callable

from .conversation import Conversation
from .transports import AudioOutput, Emit


class Playback:
    """Reply audio playing on a WebRTC call's outgoing track."""

    def __init__(
        self,
        emit: Emit,
        conversation: Conversation,
        *,
        running: Callable[[str], bool],
        settled: Callable[[], None],
    ) -> None:
        # Set once the call has a peer; None for WebSocket sessions.
        self.output: AudioOutput | None = None
        self._emit = emit
        self._conversation = conversation
        self._running = running
        self._settled = settled
        self._drained_before_done: set[str] = set()

    def started(self, response_id: str) -> None:
        """The first audio of a response reached the wire."""
        self._emit({"type": "output_audio_buffer.started", "response_id": response_id})

    def drained(self, response_id: str) -> None:
        """Everything queued for a response has been played."""
        if self._running(response_id):
            self._drained_before_done.add(response_id)
            return
        self._emit({"type": "output_audio_buffer.stopped", "response_id": response_id})
        self._settled()

    def response_done(self, response_id: str) -> None:
        """``response.done`` went out: report a buffer that had already drained."""
        if response_id in self._drained_before_done:
            self._drained_before_done.discard(response_id)
            self._emit({"type": "output_audio_buffer.stopped", "response_id": response_id})

    def clear(self) -> None:
        """Stop the reply playing now: ``output_audio_buffer.cleared`` and the cut item."""
        if self.output is None:
            return
        cut = self.output.clear()
        if cut is None:
            return
        self._drained_before_done.discard(cut.response_id)
        self._emit({"type": "output_audio_buffer.cleared", "response_id": cut.response_id})
        self._conversation.truncated(cut.item_id, 0, cut.played_ms)

    def stop(self) -> None:
        """No more audio, ever."""
        if self.output is not None:
            self.output.stop()
