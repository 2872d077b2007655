"""A live Realtime session (a WebRTC call or a WebSocket session).

A ``Call`` wires its parts together and owns their lifetime: the ``Outbox`` (connections and
faults), the ``Conversation``, ``InputAudio`` (buffer, VAD, idle timeout), the ``Planner``
(what the model says), the ``Responder`` (responses in progress) and ``Playback`` (the WebRTC
speaker). Client events come in through ``receive``; every event in or out is logged.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from .brain import Brain
from .conversation import Conversation, user_text
from .errors import RealtimeError, session_expired
from .eventlog import EventLog, loggable_raw
from .events import ClientEventError, parse_client_event
from .faults import Faults
from .ids import new_id
from .input_audio import InputAudio
from .outbox import Outbox
from .planner import Planner
from .playback import Playback
from .responder import Responder
from .response_output import ResponseContext
from .responses import ResponseRun
from .scenario import Scenario
from .sessions import update_session
from .speech import SpeechSynthesizer
from .transports import EventSink

log = logging.getLogger(__name__)

CallKind = Literal["webrtc", "websocket"]
# A handler may return what it started; only raising matters to ``receive``.
ClientEventHandler = Callable[[dict[str, Any], EventSink | None], object]


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
        # The wire object, updated in place by ``session.update``; the parts share it.
        self.session = session
        self.scenario = scenario
        self.faults = faults
        self.safety_identifier = safety_identifier
        self.log = EventLog()
        self.started_at = time.time()
        self.ended = False
        self.end_reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_end: list[Callable[[Call], None]] = []
        self._dropped_after_event = False

        self.outbox = Outbox(self.log, faults, hold_for_datachannel=kind == "webrtc")
        self.conversation = Conversation(self.emit)
        self.planner = Planner(Brain(scenario), unanswered_tool_call=faults.unanswered_tool_call)
        self.playback = Playback(
            self.emit,
            self.conversation,
            running=lambda response_id: self.responder.running(response_id),
            settled=self._playback_settled,
        )
        self.responder = Responder(
            ResponseContext(
                session=session,
                conversation=self.conversation,
                emit=self.emit,
                synthesizer=synthesizer,
                generation_speed=scenario.generation_speed,
                audio_as_events=kind == "websocket",
                player=lambda: self.playback.output,
                tool_called=self.planner.tool_called,
            ),
            self.planner,
            spawn=self.spawn,
            racing_response_create=faults.racing_response_create,
            on_started=self._response_started,
            on_finished=self._response_finished,
        )
        self.input = InputAudio(
            session,
            emit=self.emit,
            conversation=self.conversation,
            turns=self,
            spawn=self.spawn,
            late_transcription=faults.late_transcription,
        )
        self._handlers: dict[str, ClientEventHandler] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": lambda e, _: self.input.append(e["audio"]),
            "input_audio_buffer.commit": lambda e, _: self.input.commit(),
            "input_audio_buffer.clear": lambda e, _: self.input.clear(),
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": lambda e, _: self.conversation.truncate(
                e["item_id"], e["content_index"], e["audio_end_ms"]
            ),
            "conversation.item.delete": lambda e, _: self.conversation.delete(e["item_id"]),
            "response.create": lambda e, _: self.responder.start(
                e.get("response") or {}, auto=False
            ),
            "response.cancel": lambda e, _: self.responder.cancel(e.get("response_id")),
            "output_audio_buffer.clear": self._output_clear,
        }

        max_seconds = faults.max_session_seconds or max_session_seconds
        self.session["expires_at"] = int(self.started_at + max_seconds)
        self.spawn(self._expire_after(max_seconds))
        if faults.drop_connection_after_seconds:
            self.spawn(self._drop_after(faults.drop_connection_after_seconds))

    # -- connections ------------------------------------------------------------------------

    @property
    def transports(self) -> list[str]:
        """The kinds of connection attached right now."""
        return self.outbox.transports

    def attach(self, sink: EventSink, *, announce: bool) -> None:
        """Add a connection; ``announce`` greets it with ``session.created``."""
        self.outbox.attach(sink)
        if announce:
            self.emit({"type": "session.created", "session": self.public_session()}, only=sink)
        self.outbox.release_held(sink)

    def detach(self, sink: EventSink) -> None:
        """Forget a connection that went away."""
        self.outbox.detach(sink)

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
        self.outbox.send(event, only=only)
        if (
            event["type"] == self.faults.drop_connection_after_event
            and not self._dropped_after_event
        ):
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
        try:
            self._handlers[event["type"]](event, sink)
        except RealtimeError as error:
            log.info("call %s: %s refused (%s)", self.id, event["type"], error.code)
            self.emit_error(error, event.get("event_id"), sink)

    def _session_update(self, event: dict[str, Any], sink: EventSink | None) -> None:
        update_session(self.session, event["session"], assistant_spoke=self.responder.voiced())
        self.input.configure()
        self.emit({"type": "session.updated", "session": self.public_session()})

    def _item_create(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = self.conversation.create(event["item"], event.get("previous_item_id"))
        text = user_text(item)
        if text is not None:
            self.planner.typed(item["id"], text)
        elif item.get("type") == "function_call_output":
            self.planner.tool_output(str(item.get("call_id")), item.get("output"))

    def _item_retrieve(self, event: dict[str, Any], sink: EventSink | None) -> None:
        item = self.conversation.retrieve(event["item_id"])
        self.emit({"type": "conversation.item.retrieved", "item": item}, only=sink)

    def _output_clear(self, event: dict[str, Any], sink: EventSink | None) -> None:
        if self.kind != "webrtc":
            raise RealtimeError(
                message="output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
                code="invalid_request_error",
            )
        self.playback.clear()

    # -- how the parts meet -----------------------------------------------------------------

    def heard(self, item_id: str) -> str:
        """Turn detection committed speech: the scenario says what it was."""
        return self.planner.heard(item_id)

    def interrupt(self) -> None:
        """The user spoke over the assistant: stop the reply and the audio playing."""
        self.responder.interrupt()
        self.playback.clear()

    def respond(self) -> None:
        """Turn detection ended a user turn: VAD's own response."""
        self.responder.start({}, auto=True)

    def check_in(self) -> None:
        """The user stayed silent too long."""
        self.responder.begin({}, out_of_band=False, idle=True)

    def _response_started(self, run: ResponseRun) -> None:
        if not run.out_of_band:
            self.input.disarm_idle_timer()

    def _response_finished(self, run: ResponseRun) -> None:
        self.playback.response_done(run.id)
        self.input.release_late_events()
        if self.ended or self.responder.resume_waiting():
            return
        if not run.out_of_band:
            self.input.arm_idle_timer()

    def _playback_settled(self) -> None:
        # The idle clock starts when the reply has finished playing, not when it was sent.
        if self.responder.active is None and not self.ended:
            self.input.arm_idle_timer()

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
        self.emit({"type": "error", "error": session_expired(seconds).event_error(None)})
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
        self.responder.cancel_all()
        self.ended = True
        self.playback.stop()
        self.outbox.close_all(reason, abrupt=abrupt)
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
