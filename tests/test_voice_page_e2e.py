"""The voice page in a real Chromium, against the whole product: page -> gateway -> Realtime.

The page is served by the web service and calls the gateway cross-origin, as a browser on the
host does through the published ports of ``docker compose`` (the ``stack`` fixture is the
composed stack under scripts/compose-e2e, else every service as a local process). With the
session's client secret the page then calls Realtime (the emulator) over WebRTC, under its own
CSP, which must allow exactly that. tests/test_web_voice_e2e.py covers the page in depth.

Needs ``playwright`` and a Chromium binary; skips with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencouch.testing.browser import (
    fake_microphone,
    launched_chromium,
    speech_tools_missing,
    spoken_wav,
    watch_console,
)
from opencouch.testing.processes import Stack
from opencouch.web.testing import closed_turns, connect, say

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # A silent microphone when sox is here, so Chromium's test beep never counts as speech.
    quiet: list[str] = []
    if speech_tools_missing() is None:
        quiet = fake_microphone(spoken_wav(Path(tmp_path_factory.mktemp("mic")) / "quiet.wav", 1))
    yield from launched_chromium(quiet)


def test_the_page_talks_to_realtime_through_the_gateway(stack: Stack, chromium: Any) -> None:
    problems: list[str] = []
    context = chromium.new_context()
    page = watch_console(context.new_page(), problems)
    try:
        with page.expect_response("**/api/voice/realtime/session") as created:
            connect(page, stack.web_url)
        session = created.value.json()
        say(page, "Is memory on?")
        [turn] = closed_turns(page, 1)
        tools = page.eval_on_selector_all(
            "#tools-body tr",
            "rows => rows.map(r => [r.querySelector('.tool-name').textContent, r.dataset.status])",
        )
        html = page.content()
    finally:
        context.close()

    assert session["realtime_calls_url"] == f"{stack.emulator_url}/v1/realtime/calls"
    assert turn["user"] == "Is memory on?"
    assert turn["assistant"]
    assert tools == [["show_memory_status", "done"]]
    # The client secret and the token stay out of the page.
    assert session["client_secret"]["value"] not in html
    assert session["token"] not in html
    # No CSP violation, no failed request, no script error on the way.
    assert problems == []
