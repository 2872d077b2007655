"""One response: the event sequence OpenAI sends for speech and function calls.

Text (and, over a WebSocket, audio deltas) is generated a little faster than real time, at
the scenario's ``generation_speed``; over WebRTC the audio plays in real time on the call's
outgoing track. A cancelled response closes what it started, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from . import audio
from .audio import WEBRTC_RATE
from .events import audio_tokens, text_tokens, usage
from .ids import new_id
from .scenario import ToolCallStep

if TYPE_CHECKING:
    from .brain import Plan
    from .calls import Call

_WORDS_PER_DELTA = 3
# Seconds per word when there is no audio to pace text by.
_TEXT_SECONDS_PER_WORD = 0.06


class ResponseRun:
    """Produces one response's events; ``cancel`` ends it early."""

    def __init__(
        self,
        call: Call,
        plan: Plan,
        params: dict[str, Any],
        *,
        out_of_band: bool,
        trigger_item: str | None,
    ) -> None:
        self.id = new_id("resp_")
        self.call = call
        self.plan = plan
        self.out_of_band = out_of_band
        self.trigger_item = trigger_item
        self.status = "in_progress"
        self.finished = False
        session = call.session
        self.modalities: list[str] = list(
            params.get("output_modalities") or session.get("output_modalities") or ["audio"]
        )
        self.speaks = "audio" in self.modalities
        output = {
            **session.get("audio", {}).get("output", {}),
            **((params.get("audio") or {}).get("output") or {}),
        }
        self.voice = output.get("voice", "alloy")
        voice_name = self.voice if isinstance(self.voice, str) else "alloy"
        self.voice_name = voice_name
        self.speed = float(output.get("speed", 1.0))
        self.format = output.get("format") or {"type": "audio/pcm", "rate": 24000}
        self.metadata = params.get("metadata")
        self.max_output_tokens = params.get(
            "max_output_tokens", session.get("max_output_tokens", "inf")
        )
        self.output: list[dict[str, Any]] = []
        self._reason: str | None = None
        self._cancelled = asyncio.Event()
        self._text_out = 0
        self._audio_out_ms = 0.0
        self._incomplete = False

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

    def body(self, *, done: bool) -> dict[str, Any]:
        """The ``RealtimeResponse`` object."""
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "output": copy.deepcopy(self.output),
            "output_modalities": list(self.modalities),
            "max_output_tokens": self.max_output_tokens,
            "audio": {"output": {"format": copy.deepcopy(self.format), "voice": self.voice}},
            "metadata": self.metadata,
        }
        if not self.out_of_band:
            response["conversation_id"] = self.call.conversation_id
        if done:
            if self.status == "cancelled":
                response["status_details"] = {"type": "cancelled", "reason": self._reason}
            elif self.status == "incomplete":
                response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
            response["usage"] = self._usage()
        return response

    def _usage(self) -> dict[str, Any]:
        input_text = sum(text_tokens(_item_text(item)) for item in self.call.items)
        input_text += text_tokens(str(self.call.session.get("instructions", "")))
        input_audio = sum(
            4 for item in self.call.items if item.get("role") == "user" and _is_audio(item)
        )
        return usage(
            input_text_tokens=input_text,
            input_audio_tokens=input_audio,
            output_text_tokens=self._text_out,
            output_audio_tokens=audio_tokens(self._audio_out_ms, output=True),
        )

    async def run(self) -> None:
        """Emit the whole response, from ``response.created`` to ``response.done``."""
        call = self.call
        try:
            call.emit({"type": "response.created", "response": self.body(done=False)})
            call.emit(
                {
                    "type": "rate_limits.updated",
                    "rate_limits": [
                        {
                            "name": "requests",
                            "limit": 5000,
                            "remaining": 4999,
                            "reset_seconds": 0.012,
                        },
                        {
                            "name": "tokens",
                            "limit": 400000,
                            "remaining": 395000,
                            "reset_seconds": 0.75,
                        },
                    ],
                }
            )
            index = 0
            if self.plan.say and not self.cancelled:
                await self._message(self.plan.say, index)
                index += 1
            for tool in self.plan.tool_calls:
                if self.cancelled or self._incomplete:
                    break
                await self._function_call(tool, index)
                index += 1
        finally:
            if self.cancelled:
                self.status = "cancelled"
            elif self._incomplete:
                self.status = "incomplete"
            else:
                self.status = "completed"
            self.finished = True
            call.emit({"type": "response.done", "response": self.body(done=True)})
            call.response_finished(self)

    async def _message(self, text: str, output_index: int) -> None:
        call = self.call
        item_id = new_id("item_")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"response_id": self.id, "item_id": item_id, "output_index": output_index}
        call.emit(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        if not self.out_of_band:
            call.add_item(copy.deepcopy(item))
        part_kind = "audio" if self.speaks else "text"
        empty_part = (
            {"type": "audio", "transcript": ""} if self.speaks else {"type": "text", "text": ""}
        )
        call.emit(
            {"type": "response.content_part.added", **where, "content_index": 0, "part": empty_part}
        )

        words = text.split()
        if isinstance(self.max_output_tokens, int) and text_tokens(text) > self.max_output_tokens:
            keep = max(1, self.max_output_tokens * 4 // 6)
            words = words[:keep]
            self._incomplete = True
        chunks = [
            " ".join(words[i : i + _WORDS_PER_DELTA])
            for i in range(0, len(words), _WORDS_PER_DELTA)
        ]
        chunks = [chunk if i == 0 else " " + chunk for i, chunk in enumerate(chunks)]

        samples = None
        if self.speaks:
            samples = await call.synthesizer.synthesize(
                " ".join(words), self.voice_name, self.speed
            )
            call.audio_emitted = True
        speed = call.scenario.generation_speed
        if samples is not None and samples.size:
            total_seconds = samples.size / WEBRTC_RATE / speed
        else:
            total_seconds = len(words) * _TEXT_SECONDS_PER_WORD / speed
        pieces = _split(samples, len(chunks)) if samples is not None else []

        spoken = ""
        for index, chunk in enumerate(chunks):
            if await self._pause(total_seconds / max(len(chunks), 1)):
                break
            if self.speaks:
                piece = pieces[index] if index < len(pieces) else None
                if piece is not None and piece.size:
                    self._send_audio(piece, item_id, output_index)
                call.emit(
                    {
                        "type": "response.output_audio_transcript.delta",
                        **where,
                        "content_index": 0,
                        "delta": chunk,
                    }
                )
            else:
                call.emit(
                    {
                        "type": "response.output_text.delta",
                        **where,
                        "content_index": 0,
                        "delta": chunk,
                    }
                )
            spoken += chunk
            self._text_out += text_tokens(chunk)

        if self.speaks:
            if call.kind == "websocket":
                call.emit({"type": "response.output_audio.done", **where, "content_index": 0})
            call.emit(
                {
                    "type": "response.output_audio_transcript.done",
                    **where,
                    "content_index": 0,
                    "transcript": spoken,
                }
            )
            part = {"type": part_kind, "transcript": spoken}
            content = [{"type": "output_audio", "transcript": spoken}]
        else:
            call.emit(
                {"type": "response.output_text.done", **where, "content_index": 0, "text": spoken}
            )
            part = {"type": part_kind, "text": spoken}
            content = [{"type": "output_text", "text": spoken}]
        call.emit({"type": "response.content_part.done", **where, "content_index": 0, "part": part})
        item["content"] = content
        item["status"] = "incomplete" if self.cancelled or self._incomplete else "completed"
        self._finish_item(call, output_index, item, item_id)

    def _send_audio(self, piece: audio.Samples, item_id: str, output_index: int) -> None:
        call = self.call
        self._audio_out_ms += piece.size * 1000 / WEBRTC_RATE
        if call.kind == "webrtc":
            if call.audio_out is not None:
                call.audio_out.play(piece, response_id=self.id, item_id=item_id)
            return
        rate = audio.format_rate(self.format)
        encoded = audio.encode(audio.resample(piece, WEBRTC_RATE, rate), self.format)
        call.emit(
            {
                "type": "response.output_audio.delta",
                "response_id": self.id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
                "delta": encoded,
            }
        )

    async def _function_call(self, tool: ToolCallStep, output_index: int) -> None:
        call = self.call
        item_id = new_id("item_")
        call_id = "call_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        arguments = json.dumps(tool.arguments, separators=(",", ":"))
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": tool.name,
            "arguments": "",
        }
        call.emit(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        if not self.out_of_band:
            call.add_item(copy.deepcopy(item))
            call.expect_tool_output(call_id, tool.name, self.plan.after_tools)
        where = {
            "response_id": self.id,
            "item_id": item_id,
            "output_index": output_index,
            "call_id": call_id,
        }
        for delta in _json_pieces(arguments):
            await self._pause(0.01 / call.scenario.generation_speed)
            call.emit({"type": "response.function_call_arguments.delta", **where, "delta": delta})
        call.emit(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": tool.name,
                "arguments": arguments,
            }
        )
        item["status"] = "completed"
        item["arguments"] = arguments
        self._text_out += text_tokens(arguments)
        self._finish_item(call, output_index, item, item_id)

    def _finish_item(
        self, call: Call, output_index: int, item: dict[str, Any], item_id: str
    ) -> None:
        """Close an output item: in the response, then (in-band) in the conversation."""
        call.emit(
            {
                "type": "response.output_item.done",
                "response_id": self.id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        if not self.out_of_band:
            call.replace_item(item)
            call.emit(
                {
                    "type": "conversation.item.done",
                    "previous_item_id": call.previous_item_id(item_id),
                    "item": copy.deepcopy(item),
                }
            )
        self.output.append(item)


def _split(samples: audio.Samples, parts: int) -> list[audio.Samples]:
    if parts <= 0:
        return []
    bounds = [round(samples.size * i / parts) for i in range(parts + 1)]
    return [samples[bounds[i] : bounds[i + 1]] for i in range(parts)]


def _json_pieces(arguments: str) -> list[str]:
    """A few deltas, split where a model's tokens might end."""
    cuts = [m.end() for m in re.finditer(r"[,:]", arguments)][:3]
    pieces: list[str] = []
    start = 0
    for cut in cuts:
        pieces.append(arguments[start:cut])
        start = cut
    pieces.append(arguments[start:])
    return [piece for piece in pieces if piece]


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
