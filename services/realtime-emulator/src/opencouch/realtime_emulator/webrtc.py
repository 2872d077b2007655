"""The WebRTC side of a call, with aiortc: SDP answer, ``oai-events`` channel, audio both ways."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from typing import Any

import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .audio import WEBRTC_RATE, Samples
from .calls import Call
from .errors import RealtimeError
from .playback import Playback
from .transports import PlaybackCut, Transport

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"
_FRAME_SAMPLES = WEBRTC_RATE // 50  # 20 ms, the Opus packet time browsers use
_TIME_BASE = fractions.Fraction(1, WEBRTC_RATE)


class DataChannelSink:
    """Server events out over the ``oai-events`` data channel."""

    transport: Transport = "datachannel"

    def __init__(self, channel: RTCDataChannel) -> None:
        self._channel = channel

    def deliver(self, text: str) -> None:
        """Send one event if the channel is still open."""
        if self._channel.readyState == "open":
            self._channel.send(text)

    def close(self, *, code: int = 1000, reason: str = "", abrupt: bool = False) -> None:
        """The peer connection closes with the call; nothing to do per channel."""


class SpeechTrack(MediaStreamTrack):
    """The assistant's voice: queued reply audio in real time, silence in between."""

    kind = "audio"

    def __init__(self, playback: Playback) -> None:
        super().__init__()
        self._playback = playback
        # Queue of [response_id, item_id, samples, offset].
        self._queue: deque[list[Any]] = deque()
        self._played: dict[str, int] = {}
        self._current: tuple[str, str] | None = None
        self._start: float | None = None
        self._timestamp = 0

    def play(self, samples: Samples, *, response_id: str, item_id: str) -> None:
        """Queue audio of one response item."""
        self._queue.append([response_id, item_id, samples, 0])

    def clear(self) -> PlaybackCut | None:
        """Drop the queue; report the item that was playing and how much of it was heard."""
        current = self._current
        self._queue.clear()
        self._current = None
        if current is None:
            return None
        response_id, item_id = current
        played_ms = self._played.get(item_id, 0) * 1000 // WEBRTC_RATE
        return PlaybackCut(response_id=response_id, item_id=item_id, played_ms=played_ms)

    def stop(self) -> None:
        """End the track."""
        self._queue.clear()
        super().stop()

    async def recv(self) -> AudioFrame:
        """The next 20 ms frame, paced to the wall clock."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += _FRAME_SAMPLES
            wait = self._start + self._timestamp / WEBRTC_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame_samples = self._next_samples()
        frame = AudioFrame(format="s16", layout="mono", samples=_FRAME_SAMPLES)
        frame.planes[0].update(frame_samples.astype("<i2").tobytes())
        frame.pts = self._timestamp
        frame.sample_rate = WEBRTC_RATE
        frame.time_base = _TIME_BASE
        return frame

    def _next_samples(self) -> Samples:
        out = np.zeros(_FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < _FRAME_SAMPLES and self._queue:
            entry = self._queue[0]
            response_id, item_id, samples, offset = entry
            if self._current is None or self._current[0] != response_id:
                self._current = (response_id, item_id)
                self._playback.started(response_id)
            self._current = (response_id, item_id)
            take = min(_FRAME_SAMPLES - filled, samples.size - offset)
            out[filled : filled + take] = samples[offset : offset + take]
            filled += take
            entry[3] = offset + take
            self._played[item_id] = self._played.get(item_id, 0) + take
            if entry[3] >= samples.size:
                self._queue.popleft()
        if not self._queue and self._current is not None and filled < _FRAME_SAMPLES:
            finished = self._current[0]
            self._current = None
            self._playback.drained(finished)
        return out


async def answer_offer(call: Call, offer_sdp: str) -> tuple[RTCPeerConnection, str]:
    """Set up the peer for ``call`` and return it with the SDP answer."""
    if not offer_sdp.lstrip().startswith("v=") or "m=" not in offer_sdp:
        raise RealtimeError(
            message="Invalid SDP offer: expected a session description with media sections.",
            code="invalid_offer",
            param="sdp",
        )
    # No STUN servers: aiortc would otherwise try Google's and stall without internet.
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    speaker = SpeechTrack(call.playback)
    call.playback.output = speaker

    @peer.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL:
            log.info("call %s: ignoring data channel %r", call.id, channel.label)
            return
        sink = DataChannelSink(channel)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            call.receive(message, sink)

        @channel.on("close")
        def on_close() -> None:
            call.detach(sink)

        call.attach(sink, announce=True)

    @peer.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            call.spawn(_listen(call, track))

    @peer.on("connectionstatechange")
    async def on_state() -> None:
        if peer.connectionState in ("failed", "closed") and not call.ended:
            await call.end(f"peer_{peer.connectionState}")

    try:
        await peer.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in peer.getTransceivers():
            if transceiver.kind == "audio":
                peer.addTrack(speaker)
                break
        answer = await peer.createAnswer()
        await peer.setLocalDescription(answer)
    except (ValueError, RuntimeError, AttributeError, IndexError) as error:
        await peer.close()
        raise RealtimeError(
            message=f"Invalid SDP offer: {error}", code="invalid_offer", param="sdp"
        ) from error

    call.on_end(lambda _ended: call_soon_close(peer))
    return peer, peer.localDescription.sdp


def call_soon_close(peer: RTCPeerConnection) -> None:
    """Close the peer from a synchronous callback."""
    task = asyncio.get_running_loop().create_task(peer.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[Any]] = set()


async def _listen(call: Call, track: MediaStreamTrack) -> None:
    """Feed the caller's microphone to the call's VAD until the track ends."""
    while not call.ended:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, AudioFrame):
            continue
        channels = len(frame.layout.channels)
        data = frame.to_ndarray()
        if frame.format.is_planar and channels > 1:
            data = data.mean(axis=0)
            channels = 1
        call.input.feed(samples_from_frame(data, channels), frame.sample_rate)


def samples_from_frame(data: np.ndarray[Any, Any], channels: int) -> Samples:
    """Mono int16 from an interleaved packed s16 frame buffer."""
    flat = data.reshape(-1)
    if channels > 1:
        flat = flat.reshape(-1, channels).mean(axis=1)
    return flat.astype(np.int16)
