"""Starts and stops the responses of one call: one in the conversation at a time, any
number out of band, and VAD's own response waiting for a cancelled one to close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conversation import Conversation
from .errors import RealtimeError
from .offer import Offer
from .planner import Planner
from .response_output import ResponseContext
from .responses import ResponseRun
from .transports import Spawn


class Responder:
    """The response runner of one call."""

    def __init__(
        self,
        context: ResponseContext,
        planner: Planner,
        *,
        spawn: Spawn,
        racing_response_create: bool,
        on_started: Callable[[ResponseRun], None],
        on_finished: Callable[[ResponseRun], None],
    ) -> None:
        self.active: ResponseRun | None = None
        self._context = context
        self._planner = planner
        self._spawn = spawn
        self._side: set[ResponseRun] = set()
        self._race_pending = racing_response_create
        self._auto_waiting = False
        self._voiced = False
        self._on_started = on_started
        self._on_finished = on_finished

    @property
    def _conversation(self) -> Conversation:
        return self._context.conversation

    def _busy(self) -> bool:
        return self.active is not None and not self.active.finished

    def start(self, params: dict[str, Any], *, auto: bool) -> ResponseRun | None:
        """Begin a response (VAD's or the client's), refusing a second one in the conversation."""
        out_of_band = params.get("conversation") == "none"
        if auto and self._busy():
            # VAD's response waits for the one being cancelled (or finishing) to close first.
            self._auto_waiting = True
            return None
        if not out_of_band:
            if not auto and self._race_pending:
                # The server's own response gets there first, as when VAD fires just as the
                # client asks; the client's request then loses the race.
                self._race_pending = False
                self.begin({}, out_of_band=False)
            active = self.active
            if active is not None and not active.finished:
                raise RealtimeError(
                    message=(
                        "Conversation already has an active response in progress: "
                        f"{active.id}. Wait until the response is finished "
                        "before creating a new one."
                    ),
                    code="conversation_already_has_active_response",
                )
        return self.begin(params, out_of_band=out_of_band)

    def begin(
        self, params: dict[str, Any], *, out_of_band: bool, idle: bool = False
    ) -> ResponseRun:
        """Run a response now; ``idle`` marks the check-in after the user's silence."""
        session = self._context.session
        offer = Offer.from_config(
            params.get("tools", session.get("tools")),
            params.get("tool_choice", session.get("tool_choice", "auto")),
        )
        plan, trigger = self._planner.next_plan(
            offer,
            out_of_band=out_of_band,
            idle=idle,
            conversation_empty=not self._conversation.has_user_items(),
        )
        run = ResponseRun(
            plan,
            params,
            self._context,
            out_of_band=out_of_band,
            trigger_item=trigger,
            on_done=self._finished,
        )
        if out_of_band:
            self._side.add(run)
        else:
            self.active = run
        self._on_started(run)
        self._spawn(run.run())
        return run

    def resume_waiting(self) -> bool:
        """Start VAD's response that waited for the previous one; False if none waited."""
        if not self._auto_waiting or self.active is not None:
            return False
        self._auto_waiting = False
        self.begin({}, out_of_band=False)
        return True

    def cancel(self, response_id: str | None) -> None:
        """``response.cancel``: the given response, or the one in progress."""
        for run in [self.active, *self._side]:
            if run is not None and not run.finished and response_id in (None, run.id):
                run.cancel("client_cancelled")
                return
        raise RealtimeError(
            message="Cancellation failed: no active response found.",
            code="response_cancel_not_active",
        )

    def interrupt(self) -> None:
        """The user started speaking: the response in the conversation stops."""
        if self.active is not None and not self.active.finished:
            self.active.cancel("turn_detected")

    def cancel_all(self) -> None:
        """Every response stops (the call is ending)."""
        for run in [self.active, *self._side]:
            if run is not None:
                run.cancel("client_cancelled")

    def running(self, response_id: str) -> bool:
        """Whether the response in the conversation is this one and still going."""
        active = self.active
        return active is not None and active.id == response_id and not active.finished

    def voiced(self) -> bool:
        """Whether any response has produced assistant audio yet."""
        return self._voiced or any(run.voiced for run in [self.active, *self._side] if run)

    def _finished(self, run: ResponseRun) -> None:
        self._side.discard(run)
        self._voiced = self._voiced or run.voiced
        if self.active is run:
            self.active = None
        if run.status == "cancelled":
            self._planner.cut_short(
                [item["call_id"] for item in run.output.items if item["type"] == "function_call"]
            )
        trigger = run.trigger_item
        if (
            run.status == "cancelled"
            and trigger
            and not self._conversation.has_user_items(after=trigger)
        ):
            self._planner.reopen(trigger)
        self._on_finished(run)
