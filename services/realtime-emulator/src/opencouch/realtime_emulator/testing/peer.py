"""A browser-like WebRTC caller (aiortc): a microphone that plays WAV files, the
``oai-events`` data channel, and a speaker that measures what it hears."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from ..audio import rms_dbfs, wav_pcm

RATE = 48_000
FRAME = RATE // 50
Event = dict[str, Any]


class Microphone(MediaStreamTrack):
    """Plays queued WAV files in real time, silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[np.ndarray[Any, Any]] = deque()
        self._start: float | None = None
        self._timestamp = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def say(self, wav: Path) -> None:
        """Queue a WAV file (any rate is resampled by the sender, so keep it 48 kHz)."""
        samples, rate = wav_pcm(wav.read_bytes())
        assert rate == RATE, rate
        self._queue.append(samples.copy())
        self.idle.clear()

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += FRAME
            wait = self._start + self._timestamp / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        out = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        while filled < FRAME and self._queue:
            head = self._queue[0]
            take = min(FRAME - filled, head.size)
            out[filled : filled + take] = head[:take]
            filled += take
            if take == head.size:
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        if not self._queue:
            self.idle.set()
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(out.tobytes())
        frame.pts = self._timestamp
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class Speaker:
    """Counts the audible audio the emulator sends back."""

    def __init__(self) -> None:
        self.frames = 0
        self.audible_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    def listen(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, AudioFrame):
                continue
            self.frames += 1
            data = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            if channels > 1 and not frame.format.is_planar:
                data = data.reshape(-1, channels).mean(axis=1)
            if rms_dbfs(data.astype(np.int16)) > -45:
                self.audible_ms += frame.samples * 1000 / frame.sample_rate


class TestPeer:
    """One browser-like caller: offer, data channel, mic and speaker, and the events it saw."""

    __test__ = False

    def __init__(self, *, audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.pc.createDataChannel("oai-events")
        self.mic = Microphone() if audio else None
        self.speaker = Speaker()
        self.events: list[Event] = []
        self._arrived = asyncio.Condition()
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        if self.mic is not None:
            self.pc.addTrack(self.mic)

        @self.channel.on("open")
        def on_open() -> None:
            self.opened.set()

        @self.channel.on("close")
        def on_close() -> None:
            self.closed.set()

        @self.channel.on("message")
        def on_message(message: str | bytes) -> None:
            self.events.append(json.loads(message))
            asyncio.get_running_loop().create_task(self._notify())

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self.speaker.listen(track)

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def offer(self) -> str:
        """The SDP offer, ICE candidates included."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        """Apply the emulator's SDP answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def send(self, event: Event) -> None:
        """A client event over the data channel."""
        self.channel.send(json.dumps(event))

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Event], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 30,
    ) -> Event:
        """The first event of ``kind`` (from index ``after``) matching ``where``."""

        def found() -> Event | None:
            return next(
                (e for e in self.events[after:] if e.get("type") == kind and where(e)), None
            )

        async def wait() -> Event:
            async with self._arrived:
                while (event := found()) is None:
                    await self._arrived.wait()
                return event

        return await asyncio.wait_for(wait(), timeout)

    def of_type(self, kind: str) -> list[Event]:
        """Every event of ``kind`` seen so far."""
        return [e for e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        await self.pc.close()
