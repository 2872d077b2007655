"""How long a WebRTC call to the Realtime emulator takes to connect, against a floor.

Connect time is measured from posting the SDP offer to ``/v1/realtime/calls`` until the
``oai-events`` data channel is open, as a browser experiences it. The floor is two bare aiortc
peers connecting to each other on loopback with no HTTP, measured in the same run, so the
ratio shows what the emulator adds on this machine. Prints one JSON line; exits 1 when the
median connect time is 1 s or more.

    uv run python benchmarks/bench_emulator_connect.py [--runs 15] [--url http://127.0.0.1:8090]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

API_KEY = "sk-emulator-local"
LIMIT_SECONDS = 1.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _browser_like_peer() -> tuple[RTCPeerConnection, asyncio.Event]:
    """A peer shaped like the web client: a microphone track and the ``oai-events`` channel."""
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer.addTrack(AudioStreamTrack())
    opened = asyncio.Event()
    channel = peer.createDataChannel("oai-events")
    channel.on("open", opened.set)
    return peer, opened


async def _emulator_connect(client: httpx.AsyncClient) -> float:
    peer, opened = _browser_like_peer()
    try:
        await peer.setLocalDescription(await peer.createOffer())
        started = time.perf_counter()
        response = await client.post(
            "/v1/realtime/calls",
            content=peer.localDescription.sdp,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"},
        )
        response.raise_for_status()
        await peer.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        await asyncio.wait_for(opened.wait(), 10)
        elapsed = time.perf_counter() - started
        call = response.headers["location"]
        await client.post(f"{call}/hangup", headers={"Authorization": f"Bearer {API_KEY}"})
        return elapsed
    finally:
        await peer.close()


async def _floor_connect() -> float:
    caller, opened = _browser_like_peer()
    callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    callee.addTrack(AudioStreamTrack())
    try:
        await caller.setLocalDescription(await caller.createOffer())
        started = time.perf_counter()
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        await asyncio.wait_for(opened.wait(), 10)
        return time.perf_counter() - started
    finally:
        await caller.close()
        await callee.close()


async def _wait_healthy(url: str, process: asyncio.subprocess.Process | None) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while True:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process is not None and process.returncode is not None:
                raise RuntimeError("the emulator exited before it was healthy")
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not become healthy in 30 s")
            await asyncio.sleep(0.1)


async def run(runs: int, url: str | None) -> dict[str, float | int]:
    """Connect ``runs`` times to the emulator and to a bare peer; medians and their ratio."""
    process = None
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "REALTIME_EMULATOR_PORT": str(port),
            "REALTIME_EMULATOR_API_KEYS": API_KEY,
            "REALTIME_EMULATOR_LOG_LEVEL": "warning",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencouch.realtime_emulator", env=env
        )
    try:
        await _wait_healthy(url, process)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await _emulator_connect(client)  # warm-up: imports, first codec setup
            await _floor_connect()
            emulator: list[float] = []
            floor: list[float] = []
            # Interleaved, so machine noise hits both series alike.
            for _ in range(runs):
                emulator.append(await _emulator_connect(client))
                floor.append(await _floor_connect())
    finally:
        if process is not None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
    emulator_median = statistics.median(emulator)
    floor_median = statistics.median(floor)
    return {
        "runs": runs,
        "emulator_connect_median_s": round(emulator_median, 4),
        "emulator_connect_max_s": round(max(emulator), 4),
        "floor_connect_median_s": round(floor_median, 4),
        "ratio": round(emulator_median / floor_median, 2),
        "limit_s": LIMIT_SECONDS,
    }


def main() -> None:
    """Parse arguments, run, print one JSON line, and fail above the limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--url", help="an emulator already running (default: start one)")
    args = parser.parse_args()
    result = asyncio.run(run(args.runs, args.url))
    print(json.dumps(result))
    if result["emulator_connect_median_s"] >= LIMIT_SECONDS:
        sys.exit(1)


if __name__ == "__main__":
    main()
