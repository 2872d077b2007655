"""A real Chromium completes a WebRTC call with the emulator, as the web client will.

Needs ``playwright`` and a Chromium binary (``CHROMIUM_PATH`` or ``chromium`` on PATH); skips
with the reason otherwise. The fake microphone is Chromium's own test tone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opencouch.realtime_emulator.testing import RunningEmulator
from opencouch.testing.browser import launched_chromium
from opencouch.testing.openai_spec import errors_against

# What the browser client does: mic track, "oai-events" channel, offer to /calls with the
# ephemeral key, answer, then a typed turn once the channel is open.
CALL = """async ({url, secret}) => {
  const pc = new RTCPeerConnection();
  const events = [];
  const mic = await navigator.mediaDevices.getUserMedia({audio: true});
  pc.addTrack(mic.getAudioTracks()[0], mic);
  let remoteAudio = false;
  pc.ontrack = (e) => { remoteAudio = e.track.kind === "audio"; };
  const channel = pc.createDataChannel("oai-events");
  channel.onmessage = (e) => events.push(JSON.parse(e.data));
  const opened = new Promise((resolve) => { channel.onopen = resolve; });
  await pc.setLocalDescription(await pc.createOffer());
  const reply = await fetch(url + "/v1/realtime/calls", {
    method: "POST",
    body: pc.localDescription.sdp,
    headers: {"Authorization": "Bearer " + secret, "Content-Type": "application/sdp"},
  });
  await pc.setRemoteDescription({type: "answer", sdp: await reply.text()});
  await opened;
  channel.send(JSON.stringify({type: "conversation.item.create", item: {
    type: "message", role: "user", content: [{type: "input_text", text: "is memory on?"}]}}));
  channel.send(JSON.stringify({type: "response.create"}));
  const deadline = Date.now() + 15000;
  while (!events.some((e) => e.type === "response.function_call_arguments.done")) {
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const result = {status: reply.status, location: reply.headers.get("location"), remoteAudio,
                  iceState: pc.iceConnectionState, events};
  pc.close();
  return result;
}"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched_chromium()


def test_chromium_calls_the_emulator_over_webrtc_and_gets_a_tool_call(
    emulator: RunningEmulator, chromium: Any
) -> None:
    minted = httpx.post(
        f"{emulator.base_url}/realtime/client_secrets",
        headers={"Authorization": "Bearer sk-emulator-local"},
        json={
            "session": {
                "type": "realtime",
                "model": "gpt-realtime",
                "instructions": "Be brief.",
                "tools": [
                    {
                        "type": "function",
                        "name": "show_memory_status",
                        "description": "Whether memory is on.",
                        "parameters": {"type": "object", "properties": {}},
                    }
                ],
            }
        },
    )
    assert minted.status_code == 200, minted.text
    page = chromium.new_page()
    try:
        # Any page of the emulator's origin: the call itself is cross-origin-safe anyway.
        page.goto(f"{emulator.url}/healthz")
        result = page.evaluate(CALL, {"url": emulator.url, "secret": minted.json()["value"]})
    finally:
        page.close()

    assert result["status"] == 201
    assert result["location"].startswith("/v1/realtime/calls/rtc_")
    assert result["remoteAudio"] is True
    events = result["events"]
    assert events[0]["type"] == "session.created"
    calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert calls, [e["type"] for e in events]
    assert calls[0]["name"] == "show_memory_status"
    invalid = {e["type"]: errors_against("RealtimeServerEvent", e) for e in events}
    assert not {kind: errors for kind, errors in invalid.items() if errors}
