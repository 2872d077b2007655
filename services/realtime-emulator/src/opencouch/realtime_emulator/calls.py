"""A live Realtime session (a WebRTC call or a WebSocket session) and the registry of them.

A ``Call`` owns the session config, the conversation, the input audio buffer with its VAD,
the response in progress and every connection attached to it (the data channel, sidebands,
or the WebSocket). Events out go to all of them; each event in or out is logged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from . import audio
from .audio import Samples
from .brain import Brain, Offer, Plan
from .errors import RealtimeError
from .eventlog import EventLog, loggable_raw
from .events import ClientEventError, audio_tokens, parse_client_event, text_tokens
from .faults import Faults
from .ids import new_id
from .responses import ResponseRun
from .scenario import Scenario, Step, ToolCallStep, Turn
from .sessions import apply_update, check_model_unchanged
from .speech import SpeechSynthesizer
from .transports import AudioOutput, EventSink
from .vad import EnergyVad, SpeechStarted, SpeechStopped

log = logging.getLogger(__name__)

CallKind = Literal["webrtc", "websocket"]

_MIN_COMMIT_MS = 100
_ENDED_CALLS_KEPT = 200
_PENDING_FOR_DATACHANNEL = 1000


@dataclass
class _UserTurn:
    """What the brain knows about one user item."""

    text: str
    turn: Turn | None
    plan: Plan | None = None


@dataclass
class _PendingToolCall:
    name: str
    follow_ups: list[Step]


class Call:
    """One Realtime session and everything attached to it."""

    def __init__(
        self,
        *,
        call_id: str,
        kind: CallKind,
        session: dict[str, Any],
        scenario: Scenario,
        faults: Faults,
        synthesizer: SpeechSynthesizer,
        max_session_seconds: float,
        safety_identifier: str | None = None,
    ) -> None:
        self.id = call_id
        self.kind = kind
        self.session = session
        self.scenario = scenario
        self.faults = faults
        self.synthesizer = synthesizer
        self.safety_identifier = safety_identifier
        self.brain = Brain(scenario)
        self.log = EventLog()
        self.started_at = time.time()
        self.conversation_id = new_id("conv_")
        self.items: list[dict[str, Any]] = []
        self.audio_out: AudioOutput | None = None
        self.ended = False
        self.end_reason: str | None = None
        self._sinks: list[EventSink] = []
        self._awaiting_datachannel = kind == "webrtc"
        self._pending_datachannel: deque[str] = deque(maxlen=_PENDING_FOR_DATACHANNEL)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_end: list[Callable[[Call], None]] = []
        self._vad: EnergyVad | None = None
        self._speech_item_id: str | None = None
        self._buffered_ms = 0.0
        self._input_ms_total = 0.0
        self._user_turns: dict[str, _UserTurn] = {}
        self._unanswered_user_item: str | None = None
        self._pending_tool_calls: dict[str, _PendingToolCall] = {}
        self._answered_tool_calls: list[_PendingToolCall] = []
        self.active_response: ResponseRun | None = None
        self._side_responses: set[ResponseRun] = set()
        self._late_events: list[dict[str, Any]] = []
        self._drained_before_done: set[str] = set()
        self._race_spent = False
        self._auto_response_waiting = False
        self._phantom_spent = False
        self._dropped_after_event = False
        self._idle_timer: asyncio.Task[Any] | None = None
        self.audio_emitted = False
        self._configure_vad()
        max_seconds = faults.max_session_seconds or max_session_seconds
        self.session["expires_at"] = int(self.started_at + max_seconds)
        self.spawn(self._expire_after(max_seconds))
        if faults.drop_connection_after_seconds:
            self.spawn(self._drop_after(faults.drop_connection_after_seconds))

    # -- connections ------------------------------------------------------------------------

    @property
    def transports(self) -> list[str]:
        """The kinds of connection attached right now."""
        return [sink.transport for sink in self._sinks]

    def attach(self, sink: EventSink, *, announce: bool) -> None:
        """Add a connection; ``announce`` greets it with ``session.created``."""
        self._sinks.append(sink)
        if announce:
            self.emit({"type": "session.created", "session": self.public_session()}, only=sink)
        if sink.transport == "datachannel" and self._awaiting_datachannel:
            self._awaiting_datachannel = False
            while self._pending_datachannel:
                sink.deliver(self._pending_datachannel.popleft())

    def detach(self, sink: EventSink) -> None:
        """Forget a connection that went away."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def on_end(self, callback: Callable[[Call], None]) -> None:
        """Run ``callback`` once, when the call ends."""
        self._on_end.append(callback)

    def public_session(self) -> dict[str, Any]:
        """The session object as events carry it."""
        return copy.deepcopy(self.session)

    # -- events out -------------------------------------------------------------------------

    def emit(self, event: dict[str, Any], *, only: EventSink | None = None) -> None:
        """Send a server event to every connection (or one), applying the call's faults."""
        if self.ended:
            return
        event = {"event_id": new_id("event_"), **event}
        kind = str(event["type"])
        targets = [only] if only is not None else list(self._sinks)
        dropped = kind in self.faults.drop
        duplicated = kind in self.faults.duplicate
        self.log.record(
            "out",
            [sink.transport for sink in targets],
            event,
            dropped=dropped,
            duplicated=duplicated and not dropped,
        )
        if dropped:
            return
        text = json.dumps(event, separators=(",", ":"))
        copies = 2 if duplicated else 1
        for _ in range(copies):
            for sink in targets:
                sink.deliver(text)
            if only is None and self._awaiting_datachannel:
                self._pending_datachannel.append(text)
        if kind == self.faults.drop_connection_after_event and not self._dropped_after_event:
            self._dropped_after_event = True
            self.spawn(self.end("connection_dropped", abrupt=True))

    def emit_error(
        self, error: RealtimeError, client_event_id: str | None, sink: EventSink | None
    ) -> None:
        """An ``error`` event for a client event that failed, to the connection that sent it."""
        self.emit({"type": "error", "error": error.event_error(client_event_id)}, only=sink)

    # -- events in --------------------------------------------------------------------------

    def receive(self, text: str | bytes, sink: EventSink | None) -> None:
        """Handle one client event from ``sink``; problems become ``error`` events."""
        if self.ended:
            return
        transports = [sink.transport] if sink else []
        try:
            event = parse_client_event(text)
        except ClientEventError as error:
            self.log.record("in", transports, loggable_raw(text), rejected=error.code)
            log.info("call %s: client event refused (%s)", self.id, error.code)
            self.emit_error(error, error.client_event_id, sink)
            return
        self.log.record("in", transports, event)
        client_event_id = event.get("event_id")
        try:
            self._dispatch(event, sink)
        except RealtimeError as error:
            log.info("call %s: %s refused (%s)", self.id, event["type"], error.code)
            self.emit_error(error, client_event_id, sink)

    def _dispatch(self, event: dict[str, Any], sink: EventSink | None) -> None:
        kind = event["type"]
        handlers: dict[str, Callable[[dict[str, Any], EventSink | None], None]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._audio_append,
            "input_audio_buffer.commit": self._audio_commit,
            "input_audio_buffer.clear": self._audio_clear,
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "output_audio_buffer.clear": self._output_clear,
        }
        handlers[kind](event, sink)

    def _session_update(self, event: dict[str, Any], sink: EventSink | None) -> None:
        update = event["session"]
        if update.get("type") != self.session.get("type"):
            raise RealtimeError(
                message="Cannot change the session type of a running session.",
                code="invalid_value",
                param="session.type",
            )
        check_model_unchanged(self.session, update)
        voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        current_voice = self.session["audio"]["output"].get("voice")
        if voice is not None and voice != current_voice and self.audio_emitted:
            raise RealtimeError(
                message="Cannot update a conversation's voice if assistant audio is present.",
                code="cannot_update_voice",
                param="session.audio.output.voice",
            )
        apply_update(self.session, update)
        self._configure_vad()
        self.emit({"type": "session.updated", "session": self.public_session()})

    def _audio_append(self, event: dict[str, Any], sink: EventSink | None) -> None:
        audio_format = self.session["audio"]["input"].get("format")
        try:
            samples = audio.decode(event["audio"], audio_format)
        except ValueError as error:
            raise RealtimeError(
                message="Invalid 'audio'. Expected base64-encoded audio bytes.",
                code="invalid_value",
                param="audio",
            ) from error
        self.feed_audio(samples, audio.format_rate(audio_format))

    def _audio_commit(self, event: dict[str, Any], sink: EventSink | None) -> None:
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

    def _audio_clear(self, event: dict[str, Any], sink: EventSink | None) -> None:
        self._buffered_ms = 0.0
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset()
        self.emit({"type": "input_audio_buffer.cleared"})

    def _item_create(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = copy.deepcopy(event["item"])
        item_id = item.get("id") or new_id("item_")
        if any(existing["id"] == item_id for existing in self.items):
            raise RealtimeError(
                message=f"Item with id '{item_id}' already exists.",
                code="item_id_already_exists",
                param="item.id",
            )
        item["id"] = item_id
        item["object"] = "realtime.item"
        item.setdefault("status", "completed")
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and not self._has_item(previous):
            raise RealtimeError(
                message=f"Previous item with id '{previous}' does not exist.",
                code="item_not_found",
                param="previous_item_id",
            )
        self.add_item(item, after=previous)
        self.emit(
            {
                "type": "conversation.item.done",
                "previous_item_id": self._previous_id(item_id),
                "item": copy.deepcopy(item),
            }
        )
        if item.get("type") == "message" and item.get("role") == "user":
            text = " ".join(
                str(part.get("text") or part.get("transcript") or "")
                for part in item.get("content", [])
                if isinstance(part, dict)
            ).strip()
            self._user_turns[item_id] = _UserTurn(text=text, turn=self.brain.take_turn())
            self._unanswered_user_item = item_id
        elif item.get("type") == "function_call_output":
            pending = self._pending_tool_calls.pop(str(item.get("call_id")), None)
            if pending is not None:
                self._answered_tool_calls.append(pending)

    def _item_retrieve(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = self._find_item(event["item_id"])
        self.emit({"type": "conversation.item.retrieved", "item": copy.deepcopy(item)}, only=sink)

    def _item_truncate(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = self._find_item(event["item_id"])
        if item.get("role") != "assistant":
            raise RealtimeError(
                message="Only assistant messages can be truncated.",
                code="invalid_value",
                param="item_id",
            )
        self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": event["content_index"],
                "audio_end_ms": event["audio_end_ms"],
            }
        )

    def _item_delete(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = self._find_item(event["item_id"])
        self.items.remove(item)
        self.emit({"type": "conversation.item.deleted", "item_id": item["id"]})

    def _response_create(self, event: dict[str, Any], sink: EventSink | None) -> None:
        self.start_response(event.get("response") or {}, auto=False)

    def _response_cancel(self, event: dict[str, Any], sink: EventSink | None) -> None:
        wanted = event.get("response_id")
        runs = [self.active_response, *self._side_responses]
        for run in runs:
            if run is not None and not run.finished and (wanted is None or run.id == wanted):
                run.cancel("client_cancelled")
                return
        raise RealtimeError(
            message="Cancellation failed: no active response found.",
            code="response_cancel_not_active",
        )

    def _output_clear(self, event: dict[str, Any], sink: EventSink | None) -> None:
        if self.kind != "webrtc":
            raise RealtimeError(
                message="output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
                code="invalid_request_error",
            )
        self._clear_playback()

    # -- conversation -----------------------------------------------------------------------

    def add_item(self, item: dict[str, Any], *, after: str | None = None) -> None:
        """Insert an item (after ``after``, ``"root"`` or the end) and announce it."""
        if after == "root":
            self.items.insert(0, item)
        elif after is not None:
            index = next(i for i, existing in enumerate(self.items) if existing["id"] == after)
            self.items.insert(index + 1, item)
        else:
            self.items.append(item)
        self.emit(
            {
                "type": "conversation.item.added",
                "previous_item_id": self._previous_id(item["id"]),
                "item": copy.deepcopy(item),
            }
        )

    def replace_item(self, item: dict[str, Any]) -> None:
        """Store the final form of an item already in the conversation."""
        for index, existing in enumerate(self.items):
            if existing["id"] == item["id"]:
                self.items[index] = copy.deepcopy(item)
                return

    def previous_item_id(self, item_id: str) -> str | None:
        """The id of the item just before ``item_id``."""
        return self._previous_id(item_id)

    def _previous_id(self, item_id: str) -> str | None:
        ids = [item["id"] for item in self.items]
        if item_id not in ids:
            return ids[-1] if ids else None
        index = ids.index(item_id)
        return ids[index - 1] if index > 0 else None

    def _has_item(self, item_id: str) -> bool:
        return any(item["id"] == item_id for item in self.items)

    def _find_item(self, item_id: str) -> dict[str, Any]:
        for item in self.items:
            if item["id"] == item_id:
                return item
        raise RealtimeError(
            message=f"Item with item_id '{item_id}' not found.",
            code="item_not_found",
            param="item_id",
        )

    # -- input audio ------------------------------------------------------------------------

    def _configure_vad(self) -> None:
        turn_detection = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        if turn_detection is None:
            self._vad = None
        elif self._vad is None:
            self._vad = EnergyVad(turn_detection)
            self._vad.position_ms = self._input_ms_total
        else:
            self._vad.configure(turn_detection)

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        """The session's current turn detection, or None when the client commits by hand."""
        value = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        return value if isinstance(value, dict) else None

    def feed_audio(self, samples: Samples, rate: int) -> None:
        """User audio from the mic track or ``input_audio_buffer.append``."""
        if self.ended or samples.size == 0:
            return
        milliseconds = samples.size * 1000 / rate
        self._buffered_ms += milliseconds
        self._input_ms_total += milliseconds
        if self._vad is None:
            return
        for change in self._vad.feed(samples, rate):
            if isinstance(change, SpeechStarted):
                self._speech_started(change.audio_start_ms)
            elif isinstance(change, SpeechStopped):
                self._speech_stopped(change.audio_end_ms)

    def _speech_started(self, audio_start_ms: int) -> None:
        self._disarm_idle_timer()
        self._speech_item_id = new_id("item_")
        self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        turn = self.turn_detection or {}
        if turn.get("interrupt_response", True):
            self._interrupt()

    def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self._speech_item_id or new_id("item_")
        self._speech_item_id = None
        self.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        turn = self.turn_detection or {}
        self._commit(item_id, respond=bool(turn.get("create_response", True)))

    def _commit(self, item_id: str, *, respond: bool, heard_words: bool = True) -> None:
        buffered_ms = self._buffered_ms
        self._buffered_ms = 0.0
        self.emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": self.items[-1]["id"] if self.items else None,
                "item_id": item_id,
            }
        )
        self._disarm_idle_timer()
        turn = self.brain.take_turn() if heard_words else None
        transcript = self.brain.spoken_transcript(turn) if heard_words else ""
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio"}],
        }
        self.add_item(item)
        self.emit(
            {
                "type": "conversation.item.done",
                "previous_item_id": self._previous_id(item_id),
                "item": copy.deepcopy(item),
            }
        )
        if not heard_words:
            return
        self._user_turns[item_id] = _UserTurn(text=transcript, turn=turn)
        self._unanswered_user_item = item_id
        if self.session.get("audio", {}).get("input", {}).get("transcription"):
            stored = next(i for i in self.items if i["id"] == item_id)
            stored["content"][0]["transcript"] = transcript
            transcription = self._transcription_events(item_id, transcript, buffered_ms)
            if self.faults.late_transcription and respond:
                self._late_events.extend(transcription)
            else:
                for event in transcription:
                    self.emit(event)
        if respond:
            self.start_response({}, auto=True)

    def _transcription_events(
        self, item_id: str, transcript: str, audio_ms: float
    ) -> list[dict[str, Any]]:
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

    # -- responses --------------------------------------------------------------------------

    def start_response(self, params: dict[str, Any], *, auto: bool) -> ResponseRun | None:
        """Begin a response (VAD's or the client's), refusing a second one in the conversation."""
        out_of_band = params.get("conversation") == "none"
        busy = self.active_response is not None and not self.active_response.finished
        if auto and busy:
            # VAD's response waits for the one being cancelled (or finishing) to close first.
            self._auto_response_waiting = True
            return None
        if not out_of_band:
            if not auto and self.faults.racing_response_create and not self._race_spent:
                # The server's own response gets there first, as when VAD fires just as the
                # client asks; the client's request then loses the race.
                self._race_spent = True
                self._begin_response({}, out_of_band=False)
            if self.active_response is not None and not self.active_response.finished:
                raise RealtimeError(
                    message=(
                        "Conversation already has an active response in progress: "
                        f"{self.active_response.id}. Wait until the response is finished "
                        "before creating a new one."
                    ),
                    code="conversation_already_has_active_response",
                )
        return self._begin_response(params, out_of_band=out_of_band)

    def _begin_response(
        self, params: dict[str, Any], *, out_of_band: bool, idle: bool = False
    ) -> ResponseRun:
        if not out_of_band:
            self._disarm_idle_timer()
        offer = Offer.from_config(
            params.get("tools", self.session.get("tools")),
            params.get("tool_choice", self.session.get("tool_choice", "auto")),
        )
        trigger: str | None = None
        if out_of_band:
            plan = Plan(say="Here is a short summary of the conversation so far.")
        elif self._answered_tool_calls:
            answered, self._answered_tool_calls = self._answered_tool_calls, []
            step = answered[-1].follow_ups.pop(0) if answered[-1].follow_ups else None
            plan = self.brain.follow_up(step, [call.name for call in answered], offer)
            plan.after_tools = answered[-1].follow_ups
        elif self._unanswered_user_item is not None:
            trigger = self._unanswered_user_item
            self._unanswered_user_item = None
            user_turn = self._user_turns[trigger]
            if user_turn.plan is None:
                user_turn.plan = self.brain.reply(user_turn.turn, user_turn.text, offer)
            plan = copy.deepcopy(user_turn.plan)
            if self.faults.unanswered_tool_call and not self._phantom_spent:
                self._phantom_spent = True
                plan.tool_calls.append(
                    ToolCallStep(name=self.faults.unanswered_tool_call, arguments={})
                )
        elif idle:
            plan = self.brain.check_in()
        else:
            has_user_items = any(item.get("role") == "user" for item in self.items)
            plan = self.brain.unprompted(not has_user_items, offer)
        run = ResponseRun(self, plan, params, out_of_band=out_of_band, trigger_item=trigger)
        if out_of_band:
            self._side_responses.add(run)
        else:
            self.active_response = run
        self.spawn(run.run())
        return run

    def expect_tool_output(self, call_id: str, name: str, follow_ups: list[Step]) -> None:
        """A function call went out; remember what to say once its output returns."""
        self._pending_tool_calls[call_id] = _PendingToolCall(name=name, follow_ups=list(follow_ups))

    def response_finished(self, run: ResponseRun) -> None:
        """Bookkeeping once ``response.done`` went out."""
        self._side_responses.discard(run)
        if self.active_response is run:
            self.active_response = None
        if run.status == "cancelled" and run.trigger_item and self._unanswered_user_item is None:
            newer_user = any(
                item.get("role") == "user"
                for item in self.items[self._index(run.trigger_item) + 1 :]
            )
            if not newer_user:
                self._unanswered_user_item = run.trigger_item
        if run.id in self._drained_before_done:
            self._drained_before_done.discard(run.id)
            self.emit({"type": "output_audio_buffer.stopped", "response_id": run.id})
        late, self._late_events = self._late_events, []
        for event in late:
            self.emit(event)
        if self._auto_response_waiting and self.active_response is None and not self.ended:
            self._auto_response_waiting = False
            self._begin_response({}, out_of_band=False)
        elif not run.out_of_band:
            self._arm_idle_timer()

    def _index(self, item_id: str) -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        return len(self.items)

    def _interrupt(self) -> None:
        run = self.active_response
        if run is not None and not run.finished:
            run.cancel("turn_detected")
        self._clear_playback()

    def _clear_playback(self) -> None:
        if self.audio_out is None:
            return
        cut = self.audio_out.clear()
        if cut is None:
            return
        self._drained_before_done.discard(cut.response_id)
        self.emit({"type": "output_audio_buffer.cleared", "response_id": cut.response_id})
        self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": cut.item_id,
                "content_index": 0,
                "audio_end_ms": cut.played_ms,
            }
        )

    # -- playback callbacks from the WebRTC speaker ----------------------------------------

    def playback_started(self, response_id: str) -> None:
        """The first audio of a response reached the wire."""
        self.emit({"type": "output_audio_buffer.started", "response_id": response_id})

    def playback_drained(self, response_id: str) -> None:
        """Everything queued for a response has been played."""
        run = self.active_response
        if run is not None and run.id == response_id and not run.finished:
            # OpenAI reports the buffer stopped only after response.done.
            self._drained_before_done.add(response_id)
            return
        self.emit({"type": "output_audio_buffer.stopped", "response_id": response_id})
        if self.active_response is None:
            # The idle clock starts when the reply has finished playing, not when it was sent.
            self._arm_idle_timer()

    # -- idle timeout -----------------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        turn = self.turn_detection
        timeout_ms = (
            turn.get("idle_timeout_ms") if turn and turn.get("type") == "server_vad" else None
        )
        self._disarm_idle_timer()
        if timeout_ms and not self.ended:
            self._idle_timer = self.spawn(self._idle_after(timeout_ms / 1000, self._input_ms_total))

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None and self._idle_timer is not asyncio.current_task():
            self._idle_timer.cancel()
        self._idle_timer = None

    async def _idle_after(self, seconds: float, start_ms: float) -> None:
        await asyncio.sleep(seconds)
        self._idle_timer = None
        if self._vad is not None and self._vad.speaking:
            return
        item_id = new_id("item_")
        self.emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": round(start_ms),
                "audio_end_ms": round(max(self._input_ms_total, start_ms)),
                "item_id": item_id,
            }
        )
        # The silence becomes a (wordless) user turn, and the model prompts the user to go on.
        self._commit(item_id, respond=False, heard_words=False)
        self._begin_response({}, out_of_band=False, idle=True)

    # -- lifetime ---------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work owned by this call; it is cancelled when the call ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: task failed", self.id, exc_info=task.exception())

    async def _expire_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        minutes = seconds / 60
        duration = f"{minutes:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
        self.emit(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": f"Your session hit the maximum duration of {duration}.",
                    "param": None,
                    "event_id": None,
                },
            }
        )
        await self.end("session_expired")

    async def _drop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.end("connection_dropped", abrupt=True)

    async def end(self, reason: str, *, abrupt: bool = False) -> None:
        """Stop everything and close every connection (``abrupt``: no goodbye)."""
        if self.ended:
            return
        log.info("call %s ended (%s)", self.id, reason)
        self.end_reason = reason
        for run in [self.active_response, *self._side_responses]:
            if run is not None:
                run.cancel("client_cancelled")
        self.ended = True
        if self.audio_out is not None:
            self.audio_out.stop()
        for sink in list(self._sinks):
            sink.close(code=1000, reason=reason, abrupt=abrupt)
        self._sinks.clear()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for callback in self._on_end:
            callback(self)
        self._on_end.clear()

    def summary(self) -> dict[str, Any]:
        """What ``GET /_emulator/calls`` shows about this call."""
        return {
            "call_id": self.id,
            "kind": self.kind,
            "session_id": self.session.get("id"),
            "started_at": self.started_at,
            "ended": self.ended,
            "end_reason": self.end_reason,
            "transports": self.transports,
            "events": len(self.log.entries),
        }


class CallRegistry:
    """Live calls by id, and the logs of recently ended ones."""

    def __init__(self) -> None:
        self._live: dict[str, Call] = {}
        self._ended: deque[Call] = deque(maxlen=_ENDED_CALLS_KEPT)

    def add(self, call: Call) -> None:
        """Track a new call until it ends."""
        self._live[call.id] = call
        call.on_end(self._ended_call)

    def _ended_call(self, call: Call) -> None:
        self._live.pop(call.id, None)
        self._ended.append(call)

    def live(self, call_id: str) -> Call | None:
        """A call that has not ended."""
        return self._live.get(call_id)

    def find(self, call_or_session_id: str) -> Call | None:
        """A live or recently ended call, by call id or session id."""
        for call in [*self._live.values(), *reversed(self._ended)]:
            if call_or_session_id in (call.id, call.session.get("id")):
                return call
        return None

    def all(self) -> list[Call]:
        """Live calls first, then recently ended ones."""
        return [*self._live.values(), *reversed(self._ended)]

    async def end_all(self) -> None:
        """End every live call (shutdown)."""
        for call in list(self._live.values()):
            await call.end("server_shutdown")
