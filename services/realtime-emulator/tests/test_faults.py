"""Limits and faults, each switched on per call by header (or scenario)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, BadRequestError
from websockets.exceptions import ConnectionClosedError

from opencouch.realtime_emulator import audio
from opencouch.realtime_emulator.speech import tone_speech
from opencouch.realtime_emulator.testing import (
    API_KEY,
    EventStream,
    RunningEmulator,
    TestPeer,
    fetch_log,
    sent_server_events,
)
from opencouch.testing.openai_spec import event_problems

HERE = Path(__file__).parent
PRODUCT_LIKE_TOOLS: list[dict[str, Any]] = json.loads((HERE / "product_tools.json").read_text())

USER_TEXT = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hello."}],
    },
}


@contextlib.asynccontextmanager
async def connect(
    emulator: RunningEmulator, faults: str, scenario: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Any, EventStream]]:
    headers = {"X-Emulator-Faults": faults}
    if scenario is not None:
        headers["X-Emulator-Scenario"] = json.dumps(scenario)
    client = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    async with client.realtime.connect(
        model="gpt-realtime", extra_headers=headers, max_retries=0
    ) as connection:
        stream = EventStream(connection)
        await stream.wait_for("session.created")
        try:
            yield connection, stream
        finally:
            await stream.stop()


def spoken_appends() -> list[dict[str, Any]]:
    """A speech-like tone with silence around it, as 24 kHz append events (no espeak needed)."""
    samples = audio.resample(tone_speech("hello there my friend", 175), 48_000, 24_000)
    padded = [audio.silence(24_000, 0.5), samples, audio.silence(24_000, 1.0)]
    return [
        {"type": "input_audio_buffer.append", "audio": audio.encode(chunk, None)}
        for part in padded
        for chunk in (part[i : i + 2400] for i in range(0, part.size, 2400))
    ]


async def test_maximum_session_duration_ends_with_session_expired(
    emulator: RunningEmulator,
) -> None:
    async with connect(emulator, "max_session_seconds=0.5") as (_, stream):
        created = stream.events[0]
        # The session reports its own shortened expiry.
        assert created["session"]["expires_at"] <= time.time() + 2
        error = await stream.wait_for("error", timeout=10)
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["type"] == "invalid_request_error"
        await asyncio.wait_for(stream.closed.wait(), 10)
        assert event_problems("RealtimeServerEvent", stream.events) == []


async def test_maximum_session_duration_over_webrtc(emulator: RunningEmulator) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    peer = TestPeer(audio=False)
    created = await server.realtime.calls.create(
        sdp=await peer.offer(), extra_headers={"X-Emulator-Faults": "max_session_seconds=1"}
    )
    await peer.answer(created.text)
    error = await peer.wait_for("error", timeout=15)
    assert error["error"]["code"] == "session_expired"
    await asyncio.wait_for(peer.closed.wait(), 10)
    await peer.close()


async def test_late_transcription_arrives_after_the_response(
    product_emulator: RunningEmulator,
) -> None:
    async with connect(product_emulator, "late_transcription") as (connection, stream):
        await connection.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
                },
            }
        )
        for event in spoken_appends():
            await connection.send(event)
        done = await stream.wait_for("response.done")
        completed = await stream.wait_for("conversation.item.input_audio_transcription.completed")
        assert stream.events.index(completed) > stream.events.index(done)
        assert completed["transcript"] == "I've been feeling a bit overwhelmed lately."


async def test_duplicated_and_dropped_events(emulator: RunningEmulator) -> None:
    async with connect(emulator, "duplicate=response.created; drop=conversation.item.done") as (
        connection,
        stream,
    ):
        await connection.send(USER_TEXT)
        await connection.response.create()
        await stream.wait_for("response.done")
        created = stream.of_type("response.created")
        assert len(created) == 2
        assert created[0] == created[1]
        assert stream.of_type("conversation.item.done") == []
        session_id = stream.events[0]["session"]["id"]
    log = await fetch_log(emulator, session_id)
    dropped = [entry["event"]["type"] for entry in log["log"] if entry.get("dropped")]
    assert dropped
    assert set(dropped) == {"conversation.item.done"}


async def test_racing_response_create_loses(emulator: RunningEmulator) -> None:
    async with connect(emulator, "racing_response_create") as (connection, stream):
        await connection.send({"type": "response.create", "event_id": "evt_mine"})
        error = await stream.wait_for("error")
        assert error["error"]["code"] == "conversation_already_has_active_response"
        assert error["error"]["event_id"] == "evt_mine"
        # The server's own response is the one that runs (its events may trail the error).
        await stream.wait_for("response.done")
        assert len(stream.of_type("response.created")) == 1


async def test_a_tool_call_the_client_cannot_answer(emulator: RunningEmulator) -> None:
    async with connect(emulator, "unanswered_tool_call=check_the_weather") as (connection, stream):
        await connection.send(
            {"type": "session.update", "session": {"type": "realtime", "tools": PRODUCT_LIKE_TOOLS}}
        )
        await connection.send(USER_TEXT)
        await connection.response.create()
        call = await stream.wait_for("response.function_call_arguments.done")
        assert call["name"] == "check_the_weather"
        first = await stream.wait_for("response.done")
        # Never answered: the conversation still goes on when the user speaks again.
        await connection.send(USER_TEXT)
        await connection.response.create()
        second = await stream.wait_for(
            "response.done", lambda e: e["response"]["id"] != first["response"]["id"]
        )
        assert second["response"]["status"] == "completed"
        assert second["response"]["output"][0]["type"] == "message"


async def test_abrupt_connection_loss_over_websocket(emulator: RunningEmulator) -> None:
    async with connect(emulator, "drop_connection_after_event=response.done") as (
        connection,
        stream,
    ):
        await connection.send(USER_TEXT)
        await connection.response.create()
        await asyncio.wait_for(stream.closed.wait(), 15)
        assert isinstance(stream.failure, ConnectionClosedError)
        # No close frame: the connection just went away.
        assert stream.failure.rcvd is None
        assert stream.events[-1]["type"] == "response.done"


async def test_abrupt_connection_loss_over_webrtc(emulator: RunningEmulator) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    peer = TestPeer(audio=False)
    created = await server.realtime.calls.create(
        sdp=await peer.offer(),
        extra_headers={"X-Emulator-Faults": "drop_connection_after_seconds=0.5"},
    )
    call_id = created.response.headers["location"].rsplit("/", 1)[-1]
    await peer.answer(created.text)
    await asyncio.wait_for(peer.closed.wait(), 15)
    assert peer.of_type("error") == []
    log = await fetch_log(emulator, call_id)
    assert log["end_reason"] == "connection_dropped"
    assert event_problems("RealtimeServerEvent", sent_server_events(log)) == []
    await peer.close()


async def test_scenario_faults_apply_without_a_header(emulator: RunningEmulator) -> None:
    scenario = {"faults": {"duplicate": ["session.updated"]}}
    async with connect(emulator, "", scenario) as (connection, stream):
        await connection.send({"type": "session.update", "session": {"type": "realtime"}})
        first = await stream.wait_for("session.updated")
        await stream.wait_for("session.updated", after=stream.events.index(first) + 1)
        await asyncio.sleep(0.1)  # and not a third
        assert len(stream.of_type("session.updated")) == 2


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Emulator-Faults", "max_session_seconds=soon"),
        ("X-Emulator-Faults", "explode"),
        ("X-Emulator-Scenario", '{"turns": "not a list"}'),
    ],
)
async def test_bad_switches_are_400(emulator: RunningEmulator, header: str, value: str) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    peer = TestPeer(audio=False)
    with pytest.raises(BadRequestError) as refused:
        await server.realtime.calls.create(sdp=await peer.offer(), extra_headers={header: value})
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["param"] == header
    await peer.close()


async def call_log_by_session(emulator: RunningEmulator, session_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        response = await client.get(f"/_emulator/sessions/{session_id}/log")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
