"""``/v1/realtime`` over WebSocket through the openai SDK: a session of its own, every event."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI

from opencouch.realtime_emulator import audio
from opencouch.realtime_emulator.scenario import SCENARIO_HEADER
from opencouch.realtime_emulator.speech import tone_speech
from opencouch.realtime_emulator.testing import (
    API_KEY,
    EventStream,
    RunningEmulator,
    accepted_client_events,
    make_speech_wav,
    sent_server_events,
    spec_checkable,
    speech_tools_missing,
)
from opencouch.testing.openai_spec import event_problems

HERE = Path(__file__).parent
# Generous: these tests check what the handshake answers, never its speed.
HANDSHAKE_TIMEOUT = 60
PRODUCT_LIKE_TOOLS: list[dict[str, Any]] = json.loads((HERE / "product_tools.json").read_text())

needs_speech = pytest.mark.skipif(
    speech_tools_missing() is not None, reason=speech_tools_missing() or ""
)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spoken utterance, made once for the module."""
    reason = speech_tools_missing()
    if reason:
        pytest.skip(reason)
    return make_speech_wav(
        "I just wanted to talk about my week.", tmp_path_factory.mktemp("speech")
    )


def append_events(wav: Path, audio_format: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``input_audio_buffer.append`` events carrying a WAV in 100 ms chunks."""
    samples, rate = audio.wav_pcm(wav.read_bytes())
    target = audio.format_rate(audio_format)
    samples = audio.resample(samples, rate, target)
    step = target // 10
    return [
        {
            "type": "input_audio_buffer.append",
            "audio": audio.encode(samples[i : i + step], audio_format),
        }
        for i in range(0, samples.size, step)
    ]


class Session:
    """An SDK connection plus the raw events it received."""

    def __init__(self, connection: Any, stream: EventStream) -> None:
        self.connection = connection
        self.stream = stream

    async def send(self, event: dict[str, Any]) -> None:
        await self.connection.send(event)


@contextlib.asynccontextmanager
async def open_session(
    emulator: RunningEmulator, headers: dict[str, str] | None = None
) -> AsyncIterator[Session]:
    client = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    async with client.realtime.connect(
        model="gpt-realtime", extra_headers=headers or {}, max_retries=0
    ) as connection:
        stream = EventStream(connection)
        try:
            yield Session(connection, stream)
        finally:
            await stream.stop()


@pytest.fixture
async def session(emulator: RunningEmulator) -> AsyncIterator[Session]:
    """A fresh WebSocket session with the default scenario."""
    async with open_session(emulator) as opened:
        yield opened


@pytest.fixture
async def product_session(product_emulator: RunningEmulator) -> AsyncIterator[Session]:
    """A fresh WebSocket session following the product's scenario."""
    async with open_session(product_emulator) as opened:
        yield opened


async def session_log(emulator: RunningEmulator, stream: EventStream) -> dict[str, Any]:
    session_id = stream.events[0]["session"]["id"]
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        response = await client.get(f"/_emulator/sessions/{session_id}/log")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def assert_everything_valid(emulator: RunningEmulator, stream: EventStream) -> None:
    log = await session_log(emulator, stream)
    assert event_problems("RealtimeServerEvent", stream.events) == []
    assert event_problems("RealtimeServerEvent", sent_server_events(log)) == []
    assert (
        event_problems(
            "RealtimeClientEvent", [spec_checkable(e) for e in accepted_client_events(log)]
        )
        == []
    )


async def test_typed_turn_with_tool_call_and_spoken_reply(
    product_emulator: RunningEmulator, product_session: Session
) -> None:
    emulator = product_emulator
    session = product_session
    stream = session.stream
    created = await stream.wait_for("session.created")
    assert created["session"]["model"] == "gpt-realtime"
    await session.send(
        {"type": "session.update", "session": {"type": "realtime", "tools": PRODUCT_LIKE_TOOLS}}
    )
    await stream.wait_for("session.updated")
    await session.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Some days I just want to die."}],
            },
        }
    )
    await session.send({"type": "response.create"})
    call = await stream.wait_for("response.function_call_arguments.done")
    assert call["name"] == "lookup_crisis_resources"
    first = await stream.wait_for("response.done")
    assert first["response"]["output"][0]["call_id"] == call["call_id"]

    mark = len(stream.events)
    await session.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "{}"},
        }
    )
    await session.send({"type": "response.create"})
    done = await stream.wait_for("response.done", after=mark)
    assert done["response"]["status"] == "completed"
    deltas = [e for e in stream.events[mark:] if e["type"] == "response.output_audio.delta"]
    pcm = b"".join(base64.b64decode(e["delta"]) for e in deltas)
    transcript = (await stream.wait_for("response.output_audio_transcript.done", after=mark))[
        "transcript"
    ]
    seconds = len(pcm) / 2 / 24_000
    words = len(transcript.split())
    # Speech lasts about as long as its words take to say (espeak-ng or the tone fallback).
    assert 0.2 * words < seconds < 0.8 * words
    await stream.wait_for("response.output_audio.done", after=mark)
    await assert_everything_valid(emulator, stream)


@needs_speech
async def test_spoken_turn_over_websocket(emulator: RunningEmulator, speech_wav: Path) -> None:
    script = {
        "turns": [
            {"user": "I just wanted to talk about my week.", "say": "I'd love to hear about it."}
        ]
    }
    async with open_session(emulator, {"X-Emulator-Scenario": json.dumps(script)}) as session:
        stream = session.stream
        await stream.wait_for("session.created")
        await session.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "transcription": {"model": "gpt-4o-mini-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                        }
                    },
                },
            }
        )
        await stream.wait_for("session.updated")
        for event in append_events(speech_wav):
            await session.send(event)
        started = await stream.wait_for("input_audio_buffer.speech_started")
        stopped = await stream.wait_for("input_audio_buffer.speech_stopped")
        committed = await stream.wait_for("input_audio_buffer.committed")
        assert started["item_id"] == stopped["item_id"] == committed["item_id"]
        # The WAV has a second of silence before speech; prefix padding takes 300 ms of it.
        assert 500 <= started["audio_start_ms"] <= 1000
        transcription = await stream.wait_for(
            "conversation.item.input_audio_transcription.completed"
        )
        assert transcription["transcript"] == "I just wanted to talk about my week."
        reply = await stream.wait_for("response.output_audio_transcript.done")
        assert reply["transcript"] == "I'd love to hear about it."
        done = await stream.wait_for("response.done")
        assert done["response"]["usage"]["input_token_details"]["audio_tokens"] > 0
        await assert_everything_valid(emulator, stream)


@needs_speech
async def test_speech_during_a_response_interrupts_it(
    emulator: RunningEmulator, speech_wav: Path
) -> None:
    script = {
        "generation_speed": 1.0,
        "greeting": "Hello there, it is lovely to meet you, and I hope that today has been kind to you so far.",
    }
    async with open_session(emulator, {"X-Emulator-Scenario": json.dumps(script)}) as session:
        stream = session.stream
        await stream.wait_for("session.created")
        await session.send({"type": "response.create"})
        created = await stream.wait_for("response.created")
        await stream.wait_for("response.output_audio_transcript.delta")
        for event in append_events(speech_wav):
            await session.send(event)
        await stream.wait_for("input_audio_buffer.speech_started")
        done = await stream.wait_for(
            "response.done", lambda e: e["response"]["id"] == created["response"]["id"]
        )
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        partial = await stream.wait_for("response.output_audio_transcript.done")
        assert len(partial["transcript"]) < len(str(script["greeting"]))
        # The user's turn is then answered by a fresh response.
        await stream.wait_for(
            "response.done", lambda e: e["response"]["id"] != created["response"]["id"]
        )
        await assert_everything_valid(emulator, stream)


async def test_cancel_race_and_invalid_events(emulator: RunningEmulator) -> None:
    async with open_session(
        emulator, {"X-Emulator-Scenario": json.dumps({"generation_speed": 1.0})}
    ) as session:
        stream = session.stream
        await stream.wait_for("session.created")
        await session.send({"type": "response.create", "event_id": "evt_first"})
        await session.send({"type": "response.create", "event_id": "evt_second"})
        busy = await stream.wait_for("error")
        assert busy["error"]["code"] == "conversation_already_has_active_response"
        assert busy["error"]["event_id"] == "evt_second"
        await stream.wait_for("response.output_audio_transcript.delta")
        await session.send({"type": "response.cancel"})
        done = await stream.wait_for("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"

        bad_events: list[tuple[str | dict[str, Any], str, str | None]] = [
            ({"type": "response.cancel", "event_id": "e1"}, "response_cancel_not_active", None),
            (
                {
                    "type": "session.update",
                    "event_id": "e2",
                    "session": {"type": "realtime", "temperature": 0.7},
                },
                "unknown_parameter",
                "session.temperature",
            ),
            (
                {
                    "type": "session.update",
                    "event_id": "e3",
                    "session": {"type": "realtime", "model": "gpt-realtime-2"},
                },
                "invalid_value",
                "session.model",
            ),
            (
                {
                    "type": "conversation.item.create",
                    "event_id": "e4",
                    "item": {"type": "message", "role": "robot", "content": []},
                },
                "invalid_value",
                "item.role",
            ),
            (
                {"type": "conversation.item.create", "event_id": "e5"},
                "missing_required_parameter",
                "item",
            ),
            (
                {"type": "input_audio_buffer.commit", "event_id": "e6"},
                "input_audio_buffer_commit_empty",
                None,
            ),
            (
                {"type": "conversation.item.delete", "event_id": "e7", "item_id": "item_nope"},
                "item_not_found",
                "item_id",
            ),
            (
                {
                    "type": "response.create",
                    "event_id": "e8",
                    "response": {"output_modalities": "audio"},
                },
                "invalid_type",
                "response.output_modalities",
            ),
            ({"event_id": "e9"}, "invalid_event", None),
            (
                {"type": "output_audio_buffer.clear", "event_id": "e10"},
                "invalid_request_error",
                None,
            ),
        ]
        for event, code, param in bad_events:
            mark = len(stream.events)
            await session.send(event)  # type: ignore[arg-type]
            error = await stream.wait_for("error", after=mark)
            assert (error["error"]["code"], error["error"]["param"]) == (code, param), event
            assert error["error"]["event_id"] == event["event_id"]  # type: ignore[index]
        mark = len(stream.events)
        await session.connection._connection.send("{not json")
        error = await stream.wait_for("error", after=mark)
        assert error["error"]["code"] == "invalid_json"

        # The session is still usable after every error.
        mark = len(stream.events)
        await session.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "instructions": "Still here."},
            }
        )
        updated = await stream.wait_for("session.updated", after=mark)
        assert updated["session"]["instructions"] == "Still here."
        await assert_everything_valid(emulator, stream)


async def test_conversation_items_and_out_of_band_text(
    emulator: RunningEmulator, session: Session
) -> None:
    stream = session.stream
    await stream.wait_for("session.created")
    await session.send(
        {
            "type": "conversation.item.create",
            "item": {
                "id": "item_first",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            },
        }
    )
    await session.send(
        {
            "type": "conversation.item.create",
            "previous_item_id": "root",
            "item": {
                "id": "item_system",
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "Be brief."}],
            },
        }
    )
    added = await stream.wait_for(
        "conversation.item.added", lambda e: e["item"]["id"] == "item_system"
    )
    assert added["previous_item_id"] is None
    await session.send({"type": "conversation.item.retrieve", "item_id": "item_first"})
    retrieved = await stream.wait_for("conversation.item.retrieved")
    assert retrieved["item"]["content"][0]["text"] == "hello"
    await session.send({"type": "conversation.item.delete", "item_id": "item_system"})
    assert (await stream.wait_for("conversation.item.deleted"))["item_id"] == "item_system"

    await session.send(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "metadata": {"purpose": "summary"},
                "instructions": "Summarise.",
            },
        }
    )
    done = await stream.wait_for("response.done")
    assert done["response"]["metadata"] == {"purpose": "summary"}
    assert done["response"]["output"][0]["content"][0]["type"] == "output_text"
    assert not [
        e
        for e in stream.events
        if e["type"] == "conversation.item.added" and e["item"].get("role") == "assistant"
    ]

    await session.send({"type": "response.create"})
    spoken = await stream.wait_for("response.done", after=stream.events.index(done) + 1)
    assistant_item = spoken["response"]["output"][0]["id"]
    await session.send(
        {
            "type": "conversation.item.truncate",
            "item_id": assistant_item,
            "content_index": 0,
            "audio_end_ms": 300,
        }
    )
    truncated = await stream.wait_for("conversation.item.truncated")
    assert truncated["audio_end_ms"] == 300
    await assert_everything_valid(emulator, stream)


async def test_truncating_a_reply_deletes_its_transcript(
    emulator: RunningEmulator, session: Session
) -> None:
    """OpenAI deletes the server-side transcript of a truncated reply, so neither the model's
    context nor ``conversation.item.retrieve`` holds text the user did not hear."""
    stream = session.stream
    await stream.wait_for("session.created")
    await session.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello there, how are you today?"}],
            },
        }
    )
    await session.send({"type": "response.create"})
    spoken = (await stream.wait_for("response.done"))["response"]["output"][0]
    assert spoken["content"][0]["transcript"]

    await session.send(
        {
            "type": "conversation.item.truncate",
            "item_id": spoken["id"],
            "content_index": 0,
            "audio_end_ms": 10,
        }
    )
    await stream.wait_for("conversation.item.truncated")
    await session.send({"type": "conversation.item.retrieve", "item_id": spoken["id"]})
    item = (await stream.wait_for("conversation.item.retrieved"))["item"]
    assert item["role"] == "assistant"
    assert item["status"] == spoken["status"]
    assert item["content"] == [{"type": "output_audio", "transcript": ""}]
    await assert_everything_valid(emulator, stream)


@needs_speech
async def test_g711_audio_in_and_out(emulator: RunningEmulator, speech_wav: Path) -> None:
    ulaw = {"type": "audio/pcmu"}
    async with open_session(emulator) as session:
        stream = session.stream
        await stream.wait_for("session.created")
        await session.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "format": ulaw,
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                        },
                        "output": {"format": {"type": "audio/pcma"}},
                    },
                },
            }
        )
        await stream.wait_for("session.updated")
        for event in append_events(speech_wav, ulaw):
            await session.send(event)
        await stream.wait_for("input_audio_buffer.speech_stopped")
        await stream.wait_for("response.done")
        deltas = stream.of_type("response.output_audio.delta")
        alaw = b"".join(base64.b64decode(e["delta"]) for e in deltas)
        decoded = audio.decode(base64.b64encode(alaw).decode(), {"type": "audio/pcma"})
        assert decoded.size / 8000 > 1.0
        assert float(np.abs(decoded).mean()) > 100
        await assert_everything_valid(emulator, stream)


async def test_browser_style_websocket_with_ephemeral_key(emulator: RunningEmulator) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    secret = await server.realtime.client_secrets.create(
        session={"type": "realtime", "instructions": "From the secret."}
    )
    url = emulator.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    async with websockets.connect(
        url,
        subprotocols=["realtime", f"openai-insecure-api-key.{secret.value}"],  # type: ignore[list-item]
        open_timeout=HANDSHAKE_TIMEOUT,
    ) as socket:
        assert socket.subprotocol == "realtime"
        created = json.loads(await socket.recv())
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == "From the secret."


async def test_sideband_needs_an_api_key_and_a_live_call(
    emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = emulator.url.replace("http", "ws") + "/v1/realtime?call_id=rtc_u1_nope"
    # What is checked is the status of each refusal, not how fast it comes: websockets' 10 s
    # default handshake timeout once expired on a CI machine busy building images.
    with pytest.raises(websockets.InvalidStatus) as missing:
        async with websockets.connect(
            url,
            additional_headers={"Authorization": f"Bearer {API_KEY}"},
            open_timeout=HANDSHAKE_TIMEOUT,
        ):
            pass
    assert missing.value.response.status_code == 404
    with pytest.raises(websockets.InvalidStatus) as unauthorised:
        async with websockets.connect(
            url,
            additional_headers={"Authorization": "Bearer sk-wrong-key-000"},
            open_timeout=HANDSHAKE_TIMEOUT,
        ):
            pass
    assert unauthorised.value.response.status_code == 401
    # A refusal is an answer, not a server error: nothing at ERROR (uvicorn logs one after the
    # response is out, so a later request on the same server comes first).
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        assert (await client.get("/healthz")).status_code == 200
    await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_push_to_talk_without_turn_detection(
    emulator: RunningEmulator, session: Session
) -> None:
    stream = session.stream
    await stream.wait_for("session.created")
    await session.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        }
    )
    updated = await stream.wait_for("session.updated")
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    speech = audio.resample(tone_speech("press to talk", 175), 48_000, 24_000)
    await session.send({"type": "input_audio_buffer.append", "audio": audio.encode(speech, None)})
    await session.send({"type": "input_audio_buffer.commit", "event_id": "evt_commit"})
    committed = await stream.wait_for("input_audio_buffer.committed")
    assert not stream.of_type("input_audio_buffer.speech_started")
    # No VAD, so no automatic response: the client asks for one.
    await session.send({"type": "response.create"})
    done = await stream.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    user_items = [
        e["item"]["id"]
        for e in stream.of_type("conversation.item.added")
        if e["item"]["role"] == "user"
    ]
    assert user_items == [committed["item_id"]]
    await session.send({"type": "input_audio_buffer.clear"})
    await stream.wait_for("input_audio_buffer.cleared")
    await assert_everything_valid(emulator, stream)


async def test_idle_timeout_prompts_the_user(
    product_emulator: RunningEmulator, product_session: Session
) -> None:
    emulator = product_emulator
    session = product_session
    stream = session.stream
    await stream.wait_for("session.created")
    await session.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}
                },
            },
        }
    )
    await stream.wait_for("session.updated")
    await session.send({"type": "response.create"})
    greeting = await stream.wait_for("response.done")
    # Silence from here on (the spec's minimum timeout is 5 s).
    triggered = await stream.wait_for("input_audio_buffer.timeout_triggered", timeout=20)
    assert stream.events.index(triggered) > stream.events.index(greeting)
    added = await stream.wait_for(
        "conversation.item.added", lambda e: e["item"]["id"] == triggered["item_id"]
    )
    assert added["item"]["role"] == "user"
    check_in = await stream.wait_for(
        "response.output_audio_transcript.done", after=stream.events.index(triggered)
    )
    assert check_in["transcript"] == "Are you still there? Take all the time you need."
    await stream.wait_for("response.done", after=stream.events.index(triggered))
    await assert_everything_valid(emulator, stream)


async def test_a_call_of_a_cancelled_reply_answered_not_run_is_not_followed_up(
    emulator: RunningEmulator,
) -> None:
    """The client cancels a reply while it calls a tool, and answers the call as not run (as
    the product's page does): the next reply answers the user's new words, not the tool."""
    scenario = {
        "generation_speed": 0.02,
        "rules": [
            {"match": ["check"], "tools": [{"name": "wait_for_user"}]},
            {"match": ["lonely"], "say": "Lonely is hard."},
        ],
        "after_tool_error": "That tool failed.",
        "after_tool_outputs": "The tool is done.",
    }
    async with open_session(emulator, {SCENARIO_HEADER: json.dumps(scenario)}) as session:
        stream = session.stream
        await stream.wait_for("session.created")
        tools = [{"type": "function", "name": "wait_for_user", "parameters": {"type": "object"}}]
        await session.send(
            {"type": "session.update", "session": {"type": "realtime", "tools": tools}}
        )
        await stream.wait_for("session.updated")

        async def said(text: str) -> dict[str, Any]:
            mark = len(stream.events)
            content = [{"type": "input_text", "text": text}]
            item = {"type": "message", "role": "user", "content": content}
            await session.send({"type": "conversation.item.create", "item": item})
            # Text, not speech: slowed down as the scenario is, it comes in seconds.
            response = {"output_modalities": ["text"]}
            await session.send({"type": "response.create", "response": response})
            return await stream.wait_for("response.created", after=mark)

        await said("Can you check?")
        added = await stream.wait_for(
            "response.output_item.added",
            where=lambda e: e["item"]["type"] == "function_call",
        )
        await session.send({"type": "response.cancel"})
        done = await stream.wait_for("response.done")
        assert done["response"]["status"] == "cancelled"
        not_run = {"status": "error", "error": {"code": "interrupted", "message": "not run"}}
        output = {"call_id": added["item"]["call_id"], "output": json.dumps(not_run)}
        await session.send(
            {"type": "conversation.item.create", "item": {"type": "function_call_output", **output}}
        )
        mark = len(stream.events)
        await said("I feel lonely.")
        reply = await stream.wait_for("response.output_text.delta", after=mark)
        assert reply["delta"].startswith("Lonely")  # not "That tool failed."
