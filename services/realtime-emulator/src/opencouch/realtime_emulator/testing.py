"""Test support shipped with the emulator: run it in-process, and talk to it like a browser.

Other packages' tests can use these too: ``running_emulator`` serves the real app on a free
loopback port in its own thread; ``TestPeer`` is an aiortc caller with a microphone that plays
WAV files, the ``oai-events`` channel and a speaker that measures what it hears;
``EventStream`` collects raw events from an openai SDK connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .app import create_app
from .audio import rms_dbfs, wav_pcm
from .settings import Settings

API_KEY = "sk-emulator-local"
RATE = 48_000
FRAME = RATE // 50
Event = dict[str, Any]


def free_port() -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningEmulator:
    """Where an in-process emulator listens."""

    url: str
    settings: Settings

    @property
    def base_url(self) -> str:
        """What the openai SDK takes as ``base_url``."""
        return f"{self.url}/v1"


@contextlib.contextmanager
def running_emulator(settings: Settings | None = None) -> Iterator[RunningEmulator]:
    """Serve the app with uvicorn on its own loop and thread, so a test's loop never starves it."""
    settings = settings or Settings(host="127.0.0.1", port=free_port(), api_keys=[API_KEY])
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ws_ping_interval=None,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("emulator did not start")
        time.sleep(0.02)
    try:
        yield RunningEmulator(url=f"http://{settings.host}:{settings.port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def fetch_log(emulator: RunningEmulator, call_or_session_id: str) -> dict[str, Any]:
    """The emulator's event log of a call (by call id) or WebSocket session (by session id)."""
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as client:
        if call_or_session_id.startswith("rtc_"):
            response = await client.get(
                f"/v1/realtime/calls/{call_or_session_id}/log",
                headers={"Authorization": f"Bearer {emulator.settings.api_keys[0]}"},
            )
        else:
            response = await client.get(f"/_emulator/sessions/{call_or_session_id}/log")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def accepted_client_events(log: dict[str, Any]) -> list[Event]:
    """Client events the emulator accepted (not answered with an error)."""
    return [
        entry["event"]
        for entry in log["log"]
        if entry["direction"] == "in" and "rejected" not in entry
    ]


def sent_server_events(log: dict[str, Any]) -> list[Event]:
    """Every server event the emulator sent (or meant to send) in a call."""
    return [entry["event"] for entry in log["log"] if entry["direction"] == "out"]


def spec_checkable(event: Event) -> Event:
    """``event`` as it can be checked against the official ``RealtimeClientEvent`` schema.

    The spec types ``response.conversation`` as ``oneOf`` an enum ``["auto", "none"]`` and a
    plain string, so the documented values match both branches and fail ``oneOf``. Such an
    event gets an arbitrary conversation id instead, which matches exactly one branch.
    """
    conversation = (event.get("response") or {}).get("conversation")
    if event.get("type") == "response.create" and conversation in ("auto", "none"):
        return {**event, "response": {**event["response"], "conversation": "conv_spec_check"}}
    return event


def speech_tools_missing() -> str | None:
    """Why spoken tests cannot run here (espeak-ng or sox missing), or None."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} (apt-get install -y espeak-ng sox)"
    return None


def make_speech_wav(text: str, directory: Path, name: str = "utterance") -> Path:
    """espeak-ng speech as 48 kHz mono 16-bit WAV with a second of silence either side."""
    path = directory / f"{name}.wav"
    espeak = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True)
    subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "pad",
            "1.0",
            "1.0",
        ],
        input=espeak.stdout,
        check=True,
        capture_output=True,
    )
    return path


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


class EventStream:
    """Raw server events from an openai SDK realtime connection (a WebSocket or sideband)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[Event] = []
        self.closed = asyncio.Event()
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                self.events.append(json.loads(await self.connection.recv_bytes()))
                self._changed.set()
        except Exception as error:
            self.failure = error
            self.closed.set()
            self._changed.set()

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Event], bool] = lambda _: True,
        *,
        after: int = 0,
        timeout: float = 30,
    ) -> Event:
        """The first event of ``kind`` (from index ``after``) matching ``where``."""

        async def wait() -> Event:
            while True:
                for event in self.events[after:]:
                    if event["type"] == kind and where(event):
                        return event
                if self.closed.is_set():
                    raise AssertionError(f"connection closed before {kind}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    def of_type(self, kind: str) -> list[Event]:
        """Every event of ``kind`` seen so far."""
        return [e for e in self.events if e.get("type") == kind]

    async def stop(self) -> None:
        self._task.cancel()


# -- function tools shaped like the product's ---------------------------------------------

EXERCISES = ["grounding_5_4_3_2_1", "grounding_box_breathing", "self_compassion_break"]


def _tool(
    name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": f"{name.replace('_', ' ')}.",
        "parameters": {
            "type": "object",
            "properties": properties or {},
            "required": required or [],
            "additionalProperties": False,
        },
    }


PRODUCT_LIKE_TOOLS: list[dict[str, Any]] = [
    _tool("wait_for_user"),
    _tool("show_memory_status"),
    _tool("lookup_crisis_resources"),
    _tool(
        "get_crisis_support_template",
        {
            "risk_level": {"type": "string", "enum": ["moderate", "high", "imminent"]},
            "inferred_location": {"type": "string", "maxLength": 120},
        },
        ["risk_level"],
    ),
    _tool(
        "list_guided_exercise_skills",
        {"channel": {"type": "string", "enum": ["voice", "text"]}},
    ),
    _tool(
        "load_guided_exercise_skill",
        {
            "exercise_type": {"type": "string", "enum": EXERCISES},
            "runtime_action": {
                "type": "string",
                "enum": ["start", "continue", "repeat_step", "simplify", "finish"],
            },
            "current_step_index": {"type": "integer", "minimum": 0, "maximum": 20},
        },
        ["exercise_type", "runtime_action"],
    ),
    _tool(
        "recall_saved_memory",
        {
            "query": {"type": "string", "minLength": 1, "maxLength": 500},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
        },
        ["query"],
    ),
    _tool(
        "save_response_preference",
        {
            "preference_text": {"type": "string", "minLength": 1, "maxLength": 500},
            "user_quote": {"type": "string", "maxLength": 500},
        },
        ["preference_text", "user_quote"],
    ),
]


def tools_named(*names: str) -> list[dict[str, Any]]:
    """The product tools with these names, in catalog order."""
    return [tool for tool in PRODUCT_LIKE_TOOLS if tool["name"] in names]
