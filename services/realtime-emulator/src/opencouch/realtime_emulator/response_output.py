"""The output items of one response: a spoken (or text) message, and function calls.

Text (and, over a WebSocket, audio deltas) is generated a little faster than real time, at
the scenario's ``generation_speed``; over WebRTC the audio plays in real time on the call's
outgoing track instead of travelling as events.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import audio
from .audio import WEBRTC_RATE
from .brain import Plan
from .conversation import Conversation
from .events import text_tokens
from .ids import new_id
from .scenario import ToolCallStep
from .speech import SpeechSynthesizer
from .transports import AudioOutput, Emit

_WORDS_PER_DELTA = 3
# Seconds per word when there is no audio to pace text by.
_TEXT_SECONDS_PER_WORD = 0.06


@dataclass(frozen=True)
class ResponseContext:
    """What every response of one call shares."""

    session: dict[str, Any]
    conversation: Conversation
    emit: Emit
    synthesizer: SpeechSynthesizer
    generation_speed: float
    # WebSocket sessions get audio as ``response.output_audio.delta`` events; WebRTC calls
    # play it on ``player()``, the call's speaker.
    audio_as_events: bool
    player: Callable[[], AudioOutput | None]
    # A function call went out: (call_id, name, the plan that made it, which says what to do
    # once its output returns).
    tool_called: Callable[[str, str, Plan], None]


class ResponseOutput:
    """Writes the items of one response and counts what it produced."""

    def __init__(
        self,
        response_id: str,
        context: ResponseContext,
        params: dict[str, Any],
        *,
        out_of_band: bool,
        pause: Callable[[float], Awaitable[bool]],
        cancelled: Callable[[], bool],
    ) -> None:
        self.response_id = response_id
        self._context = context
        self._out_of_band = out_of_band
        self._pause = pause
        self._cancelled = cancelled
        session = context.session
        self.modalities: list[str] = list(
            params.get("output_modalities") or session.get("output_modalities") or ["audio"]
        )
        self.speaks = "audio" in self.modalities
        output = {
            **session.get("audio", {}).get("output", {}),
            **((params.get("audio") or {}).get("output") or {}),
        }
        self.voice = output.get("voice", "alloy")
        self._voice_name = self.voice if isinstance(self.voice, str) else "alloy"
        self._speed = float(output.get("speed", 1.0))
        self.format = output.get("format") or {"type": "audio/pcm", "rate": 24000}
        self.max_output_tokens = params.get(
            "max_output_tokens", session.get("max_output_tokens", "inf")
        )
        self.items: list[dict[str, Any]] = []
        self.text_tokens = 0
        self.audio_ms = 0.0
        self.incomplete = False
        self.voiced = False

    async def message(self, text: str) -> None:
        """An assistant message saying ``text``, streamed in deltas."""
        context = self._context
        output_index = len(self.items)
        item: dict[str, Any] = {
            "id": new_id("item_"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": output_index,
        }
        self._added(item, output_index)
        part_kind = "audio" if self.speaks else "text"
        empty_part = (
            {"type": "audio", "transcript": ""} if self.speaks else {"type": "text", "text": ""}
        )
        context.emit(
            {"type": "response.content_part.added", **where, "content_index": 0, "part": empty_part}
        )
        words = text.split()
        if isinstance(self.max_output_tokens, int) and text_tokens(text) > self.max_output_tokens:
            words = words[: max(1, self.max_output_tokens * 4 // 6)]
            self.incomplete = True
        chunks = [
            (" " if i else "") + " ".join(words[i : i + _WORDS_PER_DELTA])
            for i in range(0, len(words), _WORDS_PER_DELTA)
        ]
        samples = None
        if self.speaks:
            samples = await context.synthesizer.synthesize(
                " ".join(words), self._voice_name, self._speed
            )
            self.voiced = True
        speed = context.generation_speed
        if samples is not None and samples.size:
            total_seconds = samples.size / WEBRTC_RATE / speed
        else:
            total_seconds = len(words) * _TEXT_SECONDS_PER_WORD / speed
        pieces = _split(samples, len(chunks)) if samples is not None else []

        delta_type = (
            "response.output_audio_transcript.delta"
            if self.speaks
            else "response.output_text.delta"
        )
        said = ""
        for index, chunk in enumerate(chunks):
            if await self._pause(total_seconds / max(len(chunks), 1)):
                break
            if index < len(pieces) and pieces[index].size:
                self._send_audio(pieces[index], item["id"], output_index)
            context.emit({"type": delta_type, **where, "content_index": 0, "delta": chunk})
            said += chunk
            self.text_tokens += text_tokens(chunk)

        if self.speaks:
            if context.audio_as_events:
                context.emit({"type": "response.output_audio.done", **where, "content_index": 0})
            context.emit(
                {
                    "type": "response.output_audio_transcript.done",
                    **where,
                    "content_index": 0,
                    "transcript": said,
                }
            )
            part = {"type": part_kind, "transcript": said}
            item["content"] = [{"type": "output_audio", "transcript": said}]
        else:
            context.emit(
                {"type": "response.output_text.done", **where, "content_index": 0, "text": said}
            )
            part = {"type": part_kind, "text": said}
            item["content"] = [{"type": "output_text", "text": said}]
        context.emit(
            {"type": "response.content_part.done", **where, "content_index": 0, "part": part}
        )
        item["status"] = "incomplete" if self._cancelled() or self.incomplete else "completed"
        self._done(item, output_index)

    def _send_audio(self, piece: audio.Samples, item_id: str, output_index: int) -> None:
        self.audio_ms += piece.size * 1000 / WEBRTC_RATE
        if not self._context.audio_as_events:
            player = self._context.player()
            if player is not None:
                player.play(piece, response_id=self.response_id, item_id=item_id)
            return
        rate = audio.format_rate(self.format)
        self._context.emit(
            {
                "type": "response.output_audio.delta",
                "response_id": self.response_id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
                "delta": audio.encode(audio.resample(piece, WEBRTC_RATE, rate), self.format),
            }
        )

    async def function_call(self, tool: ToolCallStep, plan: Plan) -> None:
        """A call of ``tool``, its arguments streamed in a few deltas."""
        context = self._context
        output_index = len(self.items)
        call_id = "call_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        arguments = json.dumps(tool.arguments, separators=(",", ":"))
        item: dict[str, Any] = {
            "id": new_id("item_"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": tool.name,
            "arguments": "",
        }
        self._added(item, output_index)
        if not self._out_of_band:
            context.tool_called(call_id, tool.name, plan)
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": output_index,
            "call_id": call_id,
        }
        for delta in _json_pieces(arguments):
            await self._pause(0.01 / context.generation_speed)
            context.emit(
                {"type": "response.function_call_arguments.delta", **where, "delta": delta}
            )
        context.emit(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": tool.name,
                "arguments": arguments,
            }
        )
        item["status"] = "completed"
        item["arguments"] = arguments
        self.text_tokens += text_tokens(arguments)
        self._done(item, output_index)

    def _added(self, item: dict[str, Any], output_index: int) -> None:
        """Open an output item: in the response, then (in-band) in the conversation."""
        self._context.emit(
            {
                "type": "response.output_item.added",
                "response_id": self.response_id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        if not self._out_of_band:
            self._context.conversation.add(copy.deepcopy(item))

    def _done(self, item: dict[str, Any], output_index: int) -> None:
        """Close an output item: in the response, then (in-band) in the conversation."""
        self._context.emit(
            {
                "type": "response.output_item.done",
                "response_id": self.response_id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        if not self._out_of_band:
            self._context.conversation.finish(item)
        self.items.append(item)


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
