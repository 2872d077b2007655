"""Emulator-only endpoints: swapping the default scenario and listing calls."""

from __future__ import annotations

import httpx
from openai import AsyncOpenAI

from opencouch.realtime_emulator.testing import API_KEY, EventStream, RunningEmulator

SCENARIO_YAML = """
name: typed-demo
turns:
  - say: Thanks for typing that.
"""


async def test_default_scenario_can_be_swapped_for_new_calls(
    emulator: RunningEmulator, http: httpx.AsyncClient
) -> None:
    replaced = await http.put("/_emulator/scenario", content=SCENARIO_YAML)
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "typed-demo"
    try:
        client = AsyncOpenAI(api_key=API_KEY, base_url=emulator.base_url)
        async with client.realtime.connect(model="gpt-realtime", max_retries=0) as connection:
            stream = EventStream(connection)
            created = await stream.wait_for("session.created")
            await connection.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                }
            )
            await connection.response.create()
            said = await stream.wait_for("response.output_audio_transcript.done")
            assert said["transcript"] == "Thanks for typing that."
            await stream.stop()
        listed = (await http.get("/_emulator/calls")).json()["calls"]
        mine = next(call for call in listed if call["session_id"] == created["session"]["id"])
        assert mine["kind"] == "websocket"
    finally:
        restored = await http.put("/_emulator/scenario", content="")
        assert restored.json()["name"] == "default"


async def test_invalid_scenario_body_is_400(http: httpx.AsyncClient) -> None:
    response = await http.put("/_emulator/scenario", content="turns: 5")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "body"
