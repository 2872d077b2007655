"""/voice in a real Chromium, with the CSP enforced, against a fake gateway of our own.

Needs the ``playwright`` package and a Chromium binary (``CHROMIUM_PATH``, or ``chromium`` /
``chromium-browser`` / ``google-chrome`` on PATH); skips with the reason otherwise. The
gateway here is a plain fake of the public API, so the page's own behaviour is what is tested.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from opencouch.contracts.realtime import (
    AudioConfig,
    AudioOutputConfig,
    ClientSecret,
    RealtimeFunctionTool,
    RealtimeSessionConfig,
)
from opencouch.contracts.voice_api import SessionReply, SessionRequest
from opencouch.testing.browser import launched_chromium
from opencouch.web.app import create_app
from opencouch.web.settings import Settings

SECRET = "ek_browser_test_secret_value"
FAILING_THREAD = "thread-that-fails"
# Bodies the fake gateway received, newest last.
RECEIVED: list[dict[str, Any]] = []


def free_port() -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_in_thread(app: ASGIApp, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn on its own thread and loop; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def create_session(request: Request) -> JSONResponse:
    """The fake ``POST /api/voice/realtime/session``: a canned reply, or the house error."""
    RECEIVED.append(await request.json())
    body = SessionRequest.model_validate(RECEIVED[-1])
    if body.thread_id == FAILING_THREAD:
        error = {"code": "service_unavailable", "message": "Memory is resting; try again soon."}
        return JSONResponse({"error": error}, status_code=503)
    reply = SessionReply(
        session_id="vs_" + "0" * 32,
        thread_id=body.thread_id,
        memory_mode=body.memory_mode,
        token="header.payload.signature",
        token_expires_at=int(time.time()) + 4500,
        session_expires_at=int(time.time()) + 3600,
        client_secret=ClientSecret(value=SECRET, expires_at=int(time.time()) + 60),
        realtime_calls_url="http://127.0.0.1:9/v1/realtime/calls",
        session=RealtimeSessionConfig(
            model="gpt-realtime",
            instructions="Speak gently. <b>not markup</b>",
            audio=AudioConfig(output=AudioOutputConfig(voice=body.assistant_voice)),
            tools=[
                RealtimeFunctionTool(
                    name=name, description=name, parameters={"type": "object", "properties": {}}
                )
                for name in ("wait_for_user", "lookup_crisis_resources")
            ],
        ),
    )
    return JSONResponse(reply.model_dump(mode="json"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched_chromium()


@pytest.fixture(scope="module")
def web_url() -> Iterator[str]:
    web_port = free_port()
    origin = f"http://127.0.0.1:{web_port}"
    gateway = Starlette(
        routes=[Route("/api/voice/realtime/session", create_session, methods=["POST"])],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=[origin],
                allow_methods=["POST"],
                allow_headers=["Content-Type", "Accept"],
            )
        ],
    )
    for gateway_url in serve_in_thread(gateway, free_port()):
        settings = Settings(api_base_url=gateway_url, realtime_origin="http://127.0.0.1:9")
        yield from serve_in_thread(create_app(settings), web_port)


@pytest.fixture
def problems() -> list[str]:
    """Console errors and warnings (CSP violations among them) and uncaught page errors."""
    return []


@pytest.fixture
def page(chromium: Any, problems: list[str]) -> Iterator[Any]:
    context = chromium.new_context()
    page = context.new_page()
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()


def test_voice_page_starts_a_session_and_shows_its_config(
    web_url: str, page: Any, problems: list[str]
) -> None:
    page.goto(f"{web_url}/voice")
    thread_id = page.input_value("#thread-id")
    assert thread_id.startswith("thread-")
    assert page.input_value("#assistant-voice") == "cedar"
    # What a later realtime.js receives: the full reply, secret included, on SESSION_READY.
    page.evaluate(
        "document.addEventListener('opencouch:session-ready', "
        "e => { window.readySecret = e.detail.client_secret.value; })"
    )

    page.check("#memory-persistent")
    page.fill("#user-id", "user-7")
    page.select_option("#assistant-voice", "marin")
    page.click("#start-session")
    page.wait_for_selector("#session:not([hidden])")

    assert page.text_content("#session-model") == "gpt-realtime"
    assert page.text_content("#session-voice") == "marin"
    assert page.text_content("#session-memory").startswith("Persistent")
    assert page.text_content("#session-secret").startswith("Issued")
    tools = page.eval_on_selector_all("#session-tools li", "items => items.map(i => i.textContent)")
    assert tools == ["wait_for_user", "lookup_crisis_resources"]
    # Shown as text, never parsed as HTML.
    assert page.text_content("#session-instructions") == "Speak gently. <b>not markup</b>"
    assert page.evaluate("document.activeElement.id") == "session-title"

    assert RECEIVED[-1] == {
        "thread_id": thread_id,
        "user_id": "user-7",
        "memory_mode": "persistent",
        "assistant_voice": "marin",
    }
    assert SECRET not in page.content()
    assert page.evaluate("window.readySecret") == SECRET
    assert problems == []


def test_voice_page_shows_an_api_error_plainly(
    web_url: str, page: Any, problems: list[str]
) -> None:
    page.goto(f"{web_url}/voice")
    page.fill("#thread-id", FAILING_THREAD)
    page.click("#start-session")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error-message") == "Memory is resting; try again soon."
    assert page.text_content("#error-code") == "service_unavailable"
    assert page.is_hidden("#session")
    # The failed request itself is the one console error a browser reports.
    assert all("503" in problem for problem in problems)


def test_dev_page_shows_the_raw_reply_with_the_secret_redacted(
    web_url: str, page: Any, problems: list[str]
) -> None:
    page.goto(f"{web_url}/voice/realtime-dev")
    page.click("#start-session")
    page.wait_for_function("document.getElementById('raw-reply').textContent.includes('vs_')")
    raw = page.text_content("#raw-reply")
    assert '"value": "[redacted]"' in raw
    assert SECRET not in page.content()
    assert problems == []


def test_defaults_send_incognito_cedar_and_no_user_id(web_url: str, page: Any) -> None:
    page.goto(f"{web_url}/voice")
    page.click("#start-session")
    page.wait_for_selector("#session:not([hidden])")
    assert page.text_content("#session-memory").startswith("Incognito")
    assert RECEIVED[-1] == {
        "thread_id": page.input_value("#thread-id"),
        "memory_mode": "incognito",
        "assistant_voice": "cedar",
    }
