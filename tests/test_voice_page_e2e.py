"""The voice page in a real Chromium, against the whole product: page -> gateway -> Realtime.

The page is served by the web service and calls the gateway cross-origin, as a browser on the
host does through the published ports of ``docker compose`` (the ``stack`` fixture is the
composed stack under scripts/compose-e2e, else every service as a local process). With the
session's client secret the browser then calls Realtime (the emulator) over WebRTC, under the
page's own CSP, which must allow exactly that.

Needs ``playwright`` and a Chromium binary; skips with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opencouch.testing.browser import launched_chromium
from opencouch.testing.processes import Stack

pytestmark = pytest.mark.e2e

# What the page's realtime module will do with SESSION_READY's reply: microphone track,
# "oai-events" channel, SDP offer to realtime_calls_url with the ephemeral secret, answer, then
# a typed turn. Returns what happened; the secret stays in the page.
CALL_REALTIME = """async () => {
  const reply = window.sessionReply;
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
  const answer = await fetch(reply.realtime_calls_url, {
    method: "POST",
    body: pc.localDescription.sdp,
    headers: {"Authorization": "Bearer " + reply.client_secret.value,
              "Content-Type": "application/sdp"},
  });
  const status = answer.status;
  if (status !== 201) { return {status, events: [], remoteAudio}; }
  await pc.setRemoteDescription({type: "answer", sdp: await answer.text()});
  await opened;
  channel.send(JSON.stringify({type: "conversation.item.create", item: {
    type: "message", role: "user", content: [{type: "input_text", text: "is memory on?"}]}}));
  channel.send(JSON.stringify({type: "response.create"}));
  // Bounded: the emulator answers a typed turn with a tool call, then the response ends.
  const deadline = Date.now() + 30000;
  while (!events.some((e) => e.type === "response.done") && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  pc.close();
  mic.getTracks().forEach((track) => track.stop());
  return {status, remoteAudio, events};
}"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched_chromium()


def test_the_page_starts_a_session_through_the_gateway_and_calls_realtime(
    stack: Stack, chromium: Any
) -> None:
    problems: list[str] = []
    context = chromium.new_context()
    page = context.new_page()
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(f"{stack.web_url}/voice")
        page.evaluate(
            "document.addEventListener('opencouch:session-ready', "
            "e => { window.sessionReply = e.detail; })"
        )
        page.click("#start-session")
        page.wait_for_selector("#session:not([hidden])")
        assert page.text_content("#session-model") == "gpt-realtime"
        assert page.text_content("#session-memory").startswith("Incognito")
        tools = page.eval_on_selector_all(
            "#session-tools li", "items => items.map(i => i.textContent)"
        )
        assert "show_memory_status" in tools
        calls_url = page.evaluate("window.sessionReply.realtime_calls_url")
        assert calls_url == f"{stack.emulator_url}/v1/realtime/calls"

        result = page.evaluate(CALL_REALTIME)
    finally:
        context.close()

    assert result["status"] == 201
    assert result["remoteAudio"] is True
    kinds = [event["type"] for event in result["events"]]
    assert kinds[0] == "session.created"
    assert "response.done" in kinds
    calls = [e for e in result["events"] if e["type"] == "response.function_call_arguments.done"]
    assert [call["name"] for call in calls] == ["show_memory_status"]
    # The session Realtime runs is the one the gateway configured for this page.
    created = result["events"][0]["session"]
    assert {tool["name"] for tool in created["tools"]} == set(tools)
    # No CSP violation, no failed request, no script error on the way.
    assert problems == []
