"""One response, from ``response.created`` to ``response.done``; ``cancel`` ends it early.

A cancelled response closes what it started, as OpenAI does, and ``response.done`` carries
the usage and why it stopped.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from .brain import Plan
from .events import audio_tokens, text_tokens, usage
from .ids import new_id
from .response_output import ResponseContext, ResponseOutput

_RATE_LIMITS = [
    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75},
]


class ResponseRun:
    """Produces one response's events."""

    def __init__(
        self,
        plan: Plan,
        params: dict[str, Any],
        context: ResponseContext,
        *,
        out_of_band: bool,
        trigger_item: str | None,
        on_done: Callable[[ResponseRun], None],
    ) -> None:
        self.id = new_id("resp_")
        self.plan = plan
        self.out_of_band = out_of_band
        # The user item this response answers, if any.
        self.trigger_item = trigger_item
        self.status = "in_progress"
        self.finished = False
        self._context = context
        self._on_done = on_done
        self._metadata = params.get("metadata")
        self._reason: str | None = None
        self._cancelled = asyncio.Event()
        self.output = ResponseOutput(
            self.id,
            context,
            params,
            out_of_band=out_of_band,
            pause=self._pause,
            cancelled=lambda: self.cancelled,
        )

    # -- control ----------------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Stop as soon as possible; ``reason`` is ``turn_detected`` or ``client_cancelled``."""
        if self._reason is None and not self.finished:
            self._reason = reason
            self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._reason is not None

    @property
    def voiced(self) -> bool:
        """Whether this response has produced assistant audio."""
        return self.output.voiced

    async def _pause(self, seconds: float) -> bool:
        """Wait, unless cancelled first; True when cancelled."""
        if self._cancelled.is_set():
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return self._cancelled.is_set()
        try:
            await asyncio.wait_for(self._cancelled.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    # -- the event sequence -----------------------------------------------------------------

    async def run(self) -> None:
        """Emit the whole response, from ``response.created`` to ``response.done``."""
        emit = self._context.emit
        try:
            emit({"type": "response.created", "response": self.body(done=False)})
            emit({"type": "rate_limits.updated", "rate_limits": copy.deepcopy(_RATE_LIMITS)})
            if self.plan.say and not self.cancelled:
                await self.output.message(self.plan.say)
            for tool in self.plan.tool_calls:
                if self.cancelled or self.output.incomplete:
                    break
                await self.output.function_call(tool, self.plan)
        finally:
            if self.cancelled:
                self.status = "cancelled"
            elif self.output.incomplete:
                self.status = "incomplete"
            else:
                self.status = "completed"
            self.finished = True
            emit({"type": "response.done", "response": self.body(done=True)})
            self._on_done(self)

    def body(self, *, done: bool) -> dict[str, Any]:
        """The ``RealtimeResponse`` object."""
        output = self.output
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "output": copy.deepcopy(output.items),
            "output_modalities": list(output.modalities),
            "max_output_tokens": output.max_output_tokens,
            "audio": {"output": {"format": copy.deepcopy(output.format), "voice": output.voice}},
            "metadata": self._metadata,
        }
        if not self.out_of_band:
            response["conversation_id"] = self._context.conversation.id
        if done:
            if self.status == "cancelled":
                response["status_details"] = {"type": "cancelled", "reason": self._reason}
            elif self.status == "incomplete":
                response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
            response["usage"] = self._usage()
        return response

    def _usage(self) -> dict[str, Any]:
        items = self._context.conversation.items
        input_text = sum(text_tokens(_item_text(item)) for item in items)
        input_text += text_tokens(str(self._context.session.get("instructions", "")))
        input_audio = sum(4 for item in items if item.get("role") == "user" and _is_audio(item))
        return usage(
            input_text_tokens=input_text,
            input_audio_tokens=input_audio,
            output_text_tokens=self.output.text_tokens,
            output_audio_tokens=audio_tokens(self.output.audio_ms, output=True),
        )


def _item_text(item: dict[str, Any]) -> str:
    if item.get("type") == "function_call":
        return str(item.get("arguments", ""))
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    return " ".join(
        str(part.get("text") or part.get("transcript") or "")
        for part in item.get("content", [])
        if isinstance(part, dict)
    )


def _is_audio(item: dict[str, Any]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") == "input_audio"
        for part in item.get("content", [])
    )
