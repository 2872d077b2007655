"""The user's audio: the input buffer, turn detection (VAD) and the idle timeout.

Detected speech becomes a user item whose transcript comes from the scenario (there is no
speech recognition); with ``create_response`` the turn is answered at once, and speech
during a reply interrupts it when ``interrupt_response`` is on.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from . import audio
from .audio import Samples
from .conversation import Conversation
from .errors import RealtimeError
from .events import audio_tokens, text_tokens
from .ids import new_id
from .transports import Emit, Spawn
from .vad import EnergyVad, SpeechStarted, SpeechStopped

_MIN_COMMIT_MS = 100


class TurnTaking(Protocol):
    """What the rest of the call does when turn detection decides."""

    def heard(self, item_id: str) -> str:
        """A spoken utterance became user item ``item_id``; returns its transcript."""

    def interrupt(self) -> None:
        """The user started speaking over the assistant."""

    def respond(self) -> None:
        """The user finished a turn: answer it."""

    def check_in(self) -> None:
        """The user stayed silent past ``idle_timeout_ms``: prompt them."""


class InputAudio:
    """Input audio of one call, at whatever rate its transport delivers."""

    def __init__(
        self,
        session: dict[str, Any],
        *,
        emit: Emit,
        conversation: Conversation,
        turns: TurnTaking,
        spawn: Spawn,
        late_transcription: bool,
    ) -> None:
        self._session = session
        self._emit = emit
        self._conversation = conversation
        self._turns = turns
        self._spawn = spawn
        self._late_transcription = late_transcription
        self._vad: EnergyVad | None = None
        self._speech_item_id: str | None = None
        self._buffered_ms = 0.0
        self._total_ms = 0.0
        self._late_events: list[dict[str, Any]] = []
        self._idle_timer: asyncio.Task[Any] | None = None
        self.configure()

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        """The session's current turn detection, or None when the client commits by hand."""
        value = self._session.get("audio", {}).get("input", {}).get("turn_detection")
        return value if isinstance(value, dict) else None

    def configure(self) -> None:
        """Follow the session's (possibly updated) turn detection."""
        turn_detection = self.turn_detection
        if turn_detection is None:
            self._vad = None
        elif self._vad is None:
            self._vad = EnergyVad(turn_detection)
            self._vad.position_ms = self._total_ms
        else:
            self._vad.configure(turn_detection)

    # -- client events ------------------------------------------------------------------------

    def append(self, payload: str) -> None:
        """``input_audio_buffer.append``: base64 audio in the session's input format."""
        audio_format = self._session["audio"]["input"].get("format")
        try:
            samples = audio.decode(payload, audio_format)
        except ValueError as error:
            raise RealtimeError(
                message="Invalid 'audio'. Expected base64-encoded audio bytes.",
                code="invalid_value",
                param="audio",
            ) from error
        self.feed(samples, audio.format_rate(audio_format))

    def commit(self) -> None:
        """``input_audio_buffer.commit``: the buffer becomes a user item, unanswered."""
        if self._buffered_ms < _MIN_COMMIT_MS:
            raise RealtimeError(
                message=(
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{_MIN_COMMIT_MS}ms of audio, but buffer only has {self._buffered_ms:.2f}ms of audio."
                ),
                code="input_audio_buffer_commit_empty",
            )
        item_id = self._speech_item_id or new_id("item_")
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset()
        self._commit(item_id, respond=False)

    def clear(self) -> None:
        """``input_audio_buffer.clear``."""
        self._buffered_ms = 0.0
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset()
        self._emit({"type": "input_audio_buffer.cleared"})

    # -- audio --------------------------------------------------------------------------------

    def feed(self, samples: Samples, rate: int) -> None:
        """User audio from the microphone track or ``input_audio_buffer.append``."""
        if samples.size == 0:
            return
        milliseconds = samples.size * 1000 / rate
        self._buffered_ms += milliseconds
        self._total_ms += milliseconds
        if self._vad is None:
            return
        for change in self._vad.feed(samples, rate):
            if isinstance(change, SpeechStarted):
                self._speech_started(change.audio_start_ms)
            elif isinstance(change, SpeechStopped):
                self._speech_stopped(change.audio_end_ms)

    def _speech_started(self, audio_start_ms: int) -> None:
        self.disarm_idle_timer()
        self._speech_item_id = new_id("item_")
        self._emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        if (self.turn_detection or {}).get("interrupt_response", True):
            self._turns.interrupt()

    def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self._speech_item_id or new_id("item_")
        self._speech_item_id = None
        self._emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        respond = bool((self.turn_detection or {}).get("create_response", True))
        self._commit(item_id, respond=respond)

    def _commit(self, item_id: str, *, respond: bool, heard_words: bool = True) -> None:
        buffered_ms, self._buffered_ms = self._buffered_ms, 0.0
        self._emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": self._conversation.last_id(),
                "item_id": item_id,
            }
        )
        self.disarm_idle_timer()
        transcript = self._turns.heard(item_id) if heard_words else None
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio"}],
        }
        self._conversation.add(item)
        self._conversation.finish(item)
        if transcript is None:
            return
        if self._session.get("audio", {}).get("input", {}).get("transcription"):
            self._conversation.set_transcript(item_id, transcript)
            transcription = _transcription_events(item_id, transcript, buffered_ms)
            if self._late_transcription and respond:
                self._late_events.extend(transcription)
            else:
                for event in transcription:
                    self._emit(event)
        if respond:
            self._turns.respond()

    def release_late_events(self) -> None:
        """Send what the ``late_transcription`` fault held back (after a ``response.done``)."""
        late, self._late_events = self._late_events, []
        for event in late:
            self._emit(event)

    # -- idle timeout -------------------------------------------------------------------------

    def arm_idle_timer(self) -> None:
        """Start the idle clock (``server_vad.idle_timeout_ms``), if the session has one."""
        turn = self.turn_detection
        timeout_ms = (
            turn.get("idle_timeout_ms") if turn and turn.get("type") == "server_vad" else None
        )
        self.disarm_idle_timer()
        if timeout_ms:
            self._idle_timer = self._spawn(self._idle_after(timeout_ms / 1000, self._total_ms))

    def disarm_idle_timer(self) -> None:
        """Stop the idle clock: the user spoke, or a response began."""
        if self._idle_timer is not None and self._idle_timer is not asyncio.current_task():
            self._idle_timer.cancel()
        self._idle_timer = None

    async def _idle_after(self, seconds: float, start_ms: float) -> None:
        await asyncio.sleep(seconds)
        self._idle_timer = None
        if self._vad is not None and self._vad.speaking:
            return
        item_id = new_id("item_")
        self._emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": round(start_ms),
                "audio_end_ms": round(max(self._total_ms, start_ms)),
                "item_id": item_id,
            }
        )
        # The silence becomes a (wordless) user turn, and the model prompts the user to go on.
        self._commit(item_id, respond=False, heard_words=False)
        self._turns.check_in()


def _transcription_events(item_id: str, transcript: str, audio_ms: float) -> list[dict[str, Any]]:
    tokens_in = audio_tokens(audio_ms, output=False)
    tokens_out = text_tokens(transcript)
    return [
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": item_id,
            "content_index": 0,
            "delta": transcript,
        },
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {
                "type": "tokens",
                "total_tokens": tokens_in + tokens_out,
                "input_tokens": tokens_in,
                "input_token_details": {"text_tokens": 0, "audio_tokens": tokens_in},
                "output_tokens": tokens_out,
            },
        },
    ]
