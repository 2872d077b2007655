"""A whole WebRTC call as the product makes it: browser peer, sideband, spoken turn, tool call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, AuthenticationError, NotFoundError

from opencouch.realtime_emulator.testing import (
    API_KEY,
    EventStream,
    RunningEmulator,
    TestPeer,
    accepted_client_events,
    fetch_log,
    make_speech_wav,
    sent_server_events,
    spec_checkable,
    speech_tools_missing,
)
from opencouch.testing.openai_spec import event_problems

HERE = Path(__file__).parent
PRODUCT_LIKE_TOOLS: list[dict[str, Any]] = json.loads((HERE / "product_tools.json").read_text())
UTTERANCE = "I keep panicking. Can we do a breathing exercise together?"
SCRIPT = {
    "turns": [
        {
            "user": UTTERANCE,
            "tools": [
                {
                    "name": "load_guided_exercise_skill",
                    "arguments": {
                        "exercise_type": "grounding_box_breathing",
                        "runtime_action": "start",
                    },
                }
            ],
            "after_tools": "Let's breathe together. In for four, hold for four, and out for four.",
        }
    ]
}
SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "You are a calm companion.",
    "tools": PRODUCT_LIKE_TOOLS,
    "audio": {
        "input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
        },
        "output": {"voice": "cedar"},
    },
}


@pytest.mark.skipif(speech_tools_missing() is not None, reason=speech_tools_missing() or "")
async def test_browser_call_spoken_turn_tool_call_and_spoken_reply(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    secret = await server.realtime.client_secrets.create(
        session=SESSION,  # type: ignore[arg-type]
        extra_headers={"OpenAI-Safety-Identifier": "hashed-user"},
    )
    wav = make_speech_wav(UTTERANCE, tmp_path)

    # The browser: ephemeral key, raw SDP, exactly as the official WebRTC guide does it.
    browser = AsyncOpenAI(api_key=secret.value, base_url=emulator.base_url)
    peer = TestPeer()
    created = await browser.realtime.calls.create(
        sdp=await peer.offer(), extra_headers={"X-Emulator-Scenario": json.dumps(SCRIPT)}
    )
    assert created.response.status_code == 201
    location = created.response.headers["location"]
    call_id = location.rsplit("/", 1)[-1]
    assert location == f"/v1/realtime/calls/{call_id}"
    assert call_id.startswith("rtc_")
    await peer.answer(created.text)
    await asyncio.wait_for(peer.opened.wait(), 10)
    session = (await peer.wait_for("session.created"))["session"]
    assert [tool["name"] for tool in session["tools"]] == [
        tool["name"] for tool in PRODUCT_LIKE_TOOLS
    ]
    assert session["audio"]["output"]["voice"] == "cedar"

    async with server.realtime.connect(call_id=call_id) as connection:
        side = EventStream(connection)
        await connection.session.update(
            session={"type": "realtime", "instructions": "Server-side instructions."}
        )
        updated = await side.wait_for("session.updated")
        assert updated["session"]["instructions"] == "Server-side instructions."
        assert updated["session"]["tools"] == PRODUCT_LIKE_TOOLS

        assert peer.mic is not None
        peer.mic.say(wav)
        arguments = await side.wait_for("response.function_call_arguments.done")
        assert arguments["name"] == "load_guided_exercise_skill"
        assert json.loads(arguments["arguments"]) == {
            "exercise_type": "grounding_box_breathing",
            "runtime_action": "start",
        }
        # The browser sees the call too; only the sideband answers it.
        await peer.wait_for("response.function_call_arguments.done")
        first_done = await side.wait_for("response.done")
        assert first_done["response"]["status"] == "completed"

        mark = len(peer.events)
        await connection.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": arguments["call_id"],
                "output": json.dumps({"status": "ok", "steps": 4}),
            }
        )
        await connection.response.create()
        transcript = await peer.wait_for("response.output_audio_transcript.done", after=mark)
        assert transcript["transcript"].startswith("Let's breathe together.")
        await peer.wait_for("output_audio_buffer.stopped", after=mark, timeout=30)
        # Real speech came back over the audio track, about as long as the reply takes to say.
        assert peer.speaker.audible_ms > 1500

        completed = await peer.wait_for("conversation.item.input_audio_transcription.completed")
        assert completed["transcript"] == UTTERANCE
        started = await peer.wait_for("input_audio_buffer.speech_started")
        stopped = await peer.wait_for("input_audio_buffer.speech_stopped")
        assert started["item_id"] == stopped["item_id"] == completed["item_id"]
        assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"]

        await server.realtime.calls.hangup(call_id)
        await asyncio.wait_for(side.closed.wait(), 10)
    await asyncio.wait_for(peer.closed.wait(), 10)
    await peer.close()

    log = await fetch_log(emulator, call_id)
    server_events = sent_server_events(log)
    kinds = {event["type"] for event in server_events}
    assert {
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "response.done",
    } <= kinds
    assert event_problems("RealtimeServerEvent", server_events) == []
    assert event_problems("RealtimeServerEvent", peer.events) == []
    assert event_problems("RealtimeServerEvent", side.events) == []
    client_events = accepted_client_events(log)
    assert [event["type"] for event in client_events] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
    assert event_problems("RealtimeClientEvent", [spec_checkable(e) for e in client_events]) == []
    usage = [e for e in server_events if e["type"] == "response.done"][-1]["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert log["ended"] is True
    assert log["end_reason"] == "hangup"


async def test_multipart_call_with_api_key_and_typed_text(
    product_emulator: RunningEmulator,
) -> None:
    # The product's scenario from its file, as the stack starts it (17 KB is too much for a
    # header a proxy would pass).
    server = AsyncOpenAI(api_key=API_KEY, base_url=product_emulator.base_url)
    peer = TestPeer(audio=False)
    created = await server.realtime.calls.create(
        sdp=await peer.offer(),
        session={"type": "realtime", "tools": PRODUCT_LIKE_TOOLS, "output_modalities": ["text"]},  # type: ignore[arg-type]
    )
    call_id = created.response.headers["location"].rsplit("/", 1)[-1]
    await peer.answer(created.text)
    await asyncio.wait_for(peer.opened.wait(), 10)
    await peer.wait_for("session.created")

    peer.send(
        {
            "type": "conversation.item.create",
            "event_id": "evt_typed_1",
            "item": {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Can you tell me about my memory settings?"}
                ],
            },
        }
    )
    peer.send({"type": "response.create"})
    call = await peer.wait_for("response.function_call_arguments.done")
    assert call["name"] == "show_memory_status"
    assert json.loads(call["arguments"]) == {}
    await peer.wait_for("response.done")

    mark = len(peer.events)
    peer.send({"type": "response.create", "event_id": "evt_racing"})
    peer.send({"type": "response.create", "event_id": "evt_loser"})
    error = await peer.wait_for("error", after=mark)
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "evt_loser"
    text_done = await peer.wait_for("response.output_text.done", after=mark)
    assert text_done["text"]

    peer.send({"type": "not.a.thing", "event_id": "evt_bad"})
    bad = await peer.wait_for("error", lambda e: e["error"]["event_id"] == "evt_bad")
    assert bad["error"]["param"] == "type"

    await server.realtime.calls.hangup(call_id)
    await asyncio.wait_for(peer.closed.wait(), 10)
    await peer.close()
    log = await fetch_log(product_emulator, call_id)
    assert event_problems("RealtimeServerEvent", sent_server_events(log)) == []
    assert (
        event_problems(
            "RealtimeClientEvent", [spec_checkable(e) for e in accepted_client_events(log)]
        )
        == []
    )
    rejected = [entry for entry in log["log"] if entry.get("rejected")]
    assert [entry["event"]["type"] for entry in rejected] == ["not.a.thing"]


async def test_unknown_or_expired_secret_is_401(emulator: RunningEmulator) -> None:
    peer = TestPeer(audio=False)
    offer = await peer.offer()
    stranger = AsyncOpenAI(
        api_key="ek_0123456789abcdef0123456789abcdef", base_url=emulator.base_url
    )
    with pytest.raises(AuthenticationError) as unknown:
        await stranger.realtime.calls.create(sdp=offer)
    assert unknown.value.status_code == 401

    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    secret = await server.realtime.client_secrets.create()
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        expired = await client.post(f"/_emulator/client_secrets/{secret.value}/expire")
        assert expired.status_code == 200
    holder = AsyncOpenAI(api_key=secret.value, base_url=emulator.base_url)
    with pytest.raises(AuthenticationError) as late:
        await holder.realtime.calls.create(sdp=offer)
    body = late.value.body
    assert isinstance(body, dict)
    assert body["code"] == "invalid_api_key"
    assert "expired" in body["message"]
    await peer.close()


async def test_multipart_with_unknown_part_or_bad_session_is_400(emulator: RunningEmulator) -> None:
    peer = TestPeer(audio=False)
    offer = await peer.offer()
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        unknown = await client.post(
            "/v1/realtime/calls",
            headers={"Authorization": f"Bearer {API_KEY}"},
            files={"sdp": (None, offer, "application/sdp"), "extra": (None, "1")},
        )
        bad_session = await client.post(
            "/v1/realtime/calls",
            headers={"Authorization": f"Bearer {API_KEY}"},
            files={
                "sdp": (None, offer, "application/sdp"),
                "session": (
                    None,
                    json.dumps({"type": "realtime", "temperature": 1}),
                    "application/json",
                ),
            },
        )
        not_sdp = await client.post(
            "/v1/realtime/calls",
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"},
            content="this is not sdp",
        )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_parameter"
    assert bad_session.status_code == 400
    assert bad_session.json()["error"]["param"] == "session.temperature"
    assert not_sdp.status_code == 400
    await peer.close()


async def test_hangup_of_unknown_call_is_404(emulator: RunningEmulator) -> None:
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    with pytest.raises(NotFoundError) as missing:
        await server.realtime.calls.hangup("rtc_u1_missing")
    assert missing.value.status_code == 404


@pytest.mark.skipif(speech_tools_missing() is not None, reason=speech_tools_missing() or "")
async def test_barge_in_clears_playing_audio_and_truncates_the_reply(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    greeting = (
        "Hello, and welcome. I am really glad you found some time for yourself today, "
        "and I would love to hear whatever is on your mind."
    )
    script = {"generation_speed": 1.0, "greeting": greeting}
    server = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
    peer = TestPeer()
    created = await server.realtime.calls.create(
        sdp=await peer.offer(),
        session={
            "type": "realtime",
            "audio": {
                "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 600}}
            },
        },
        extra_headers={"X-Emulator-Scenario": json.dumps(script)},
    )
    call_id = created.response.headers["location"].rsplit("/", 1)[-1]
    await peer.answer(created.text)
    await peer.wait_for("session.created")
    peer.send({"type": "response.create"})
    playing = await peer.wait_for("output_audio_buffer.started")
    assert peer.mic is not None
    peer.mic.say(make_speech_wav("Sorry, can I say something?", tmp_path))

    await peer.wait_for("input_audio_buffer.speech_started")
    cleared = await peer.wait_for("output_audio_buffer.cleared")
    assert cleared["response_id"] == playing["response_id"]
    truncated = await peer.wait_for("conversation.item.truncated")
    assert truncated["audio_end_ms"] > 0
    done = await peer.wait_for(
        "response.done", lambda e: e["response"]["id"] == playing["response_id"]
    )
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    # response.done reports what was generated; the stored item, cut by the server, keeps
    # no transcript the user never heard.
    assert done["response"]["output"][0]["content"][0]["transcript"]
    peer.send({"type": "conversation.item.retrieve", "item_id": truncated["item_id"]})
    retrieved = await peer.wait_for("conversation.item.retrieved")
    assert retrieved["item"]["content"][0]["transcript"] == ""
    # The interruption itself is then answered.
    await peer.wait_for("response.done", lambda e: e["response"]["id"] != playing["response_id"])

    await server.realtime.calls.hangup(call_id)
    await peer.close()
    log = await fetch_log(emulator, call_id)
    assert event_problems("RealtimeServerEvent", sent_server_events(log)) == []


async def test_browsers_may_read_the_location_cross_origin(emulator: RunningEmulator) -> None:
    peer = TestPeer(audio=False)
    origin = "http://127.0.0.1:8080"
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        preflight = await client.options(
            "/v1/realtime/calls",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        created = await client.post(
            "/v1/realtime/calls",
            content=await peer.offer(),
            headers={
                "Origin": origin,
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/sdp",
            },
        )
        assert created.status_code == 201
        assert created.headers["access-control-allow-origin"] in ("*", origin)
        assert "location" in created.headers["access-control-expose-headers"].lower()
        hangup = await client.post(
            f"{created.headers['location']}/hangup", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert hangup.status_code == 200
    await peer.close()


async def test_offer_without_candidates_connects_like_a_browser(emulator: RunningEmulator) -> None:
    # Browsers post the offer straight after setLocalDescription, before ICE gathering: the
    # emulator must learn the caller's address from its connectivity checks.
    peer = TestPeer(audio=False)
    offer = "\r\n".join(
        line
        for line in (await peer.offer()).split("\r\n")
        if not line.startswith(("a=candidate", "a=end-of-candidates"))
    )
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        created = await client.post(
            "/v1/realtime/calls",
            content=offer,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"},
        )
    assert created.status_code == 201
    await peer.answer(created.text)
    await asyncio.wait_for(peer.opened.wait(), 15)
    await peer.wait_for("session.created")
    await peer.close()
