"""Fixtures for the web client's browser tests: a real emulator, the fake voice API, the web app
and Chromium with a WAV file (silence unless a test speaks) as its microphone."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from opencouch.realtime_emulator.settings import Settings as EmulatorSettings
from opencouch.realtime_emulator.testing import RunningEmulator, free_port, running_emulator
from opencouch.testing.browser import (
    fake_microphone,
    launch_chromium,
    running_playwright,
    speech_tools_missing,
    spoken_wav,
    uncaught_errors,
    watch_console,
)
from opencouch.testing.processes import emulator_scenario
from opencouch.testing.servers import served_in_thread
from opencouch.web.app import create_app
from opencouch.web.settings import Settings
from opencouch.web.testing import FakeGateway

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "web"


def serve_in_thread(app: ASGIApp, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn on its own thread and loop; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    with served_in_thread(config) as url:
        yield url


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """The real emulator in this process, following the product's scenario by default."""
    settings = EmulatorSettings(
        host="127.0.0.1", port=free_port(), api_keys=["sk-emulator-local"], scenario=None
    )
    with running_emulator(settings) as running:
        yield running


@pytest.fixture(scope="session")
def product_scenario() -> str:
    return emulator_scenario().read_text()


@pytest.fixture
def scenario(emulator: RunningEmulator, product_scenario: str) -> Iterator[Callable[..., None]]:
    """Set the scenario new calls follow (a dict); the product's is put back afterwards."""

    def put(value: dict[str, Any] | str) -> None:
        body = value if isinstance(value, str) else json.dumps(value)
        reply = httpx.put(f"{emulator.url}/_emulator/scenario", content=body, timeout=10)
        assert reply.status_code == 200, reply.text

    put(product_scenario)
    yield put
    put(product_scenario)


@pytest.fixture(scope="session")
def fake_and_web(emulator: RunningEmulator) -> Iterator[tuple[FakeGateway, str]]:
    web_port = free_port()
    fake = FakeGateway(emulator.url)
    for gateway_url in serve_in_thread(fake.app(f"http://127.0.0.1:{web_port}"), free_port()):
        settings = Settings(api_base_url=gateway_url, realtime_origin=emulator.url)
        for web_url in serve_in_thread(create_app(settings), web_port):
            yield fake, web_url


@pytest.fixture
def fake(fake_and_web: tuple[FakeGateway, str]) -> FakeGateway:
    fake_and_web[0].reset()
    return fake_and_web[0]


@pytest.fixture
def web_url(fake_and_web: tuple[FakeGateway, str]) -> str:
    return fake_and_web[1]


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def silence(audio_dir: Path) -> Path:
    """A quiet microphone, so that Chromium's default beep never counts as speech."""
    if speech_tools_missing():
        pytest.skip(speech_tools_missing() or "")
    return spoken_wav(audio_dir / "silence.wav", 1.0)


@pytest.fixture(scope="session")
def speech(audio_dir: Path) -> Callable[..., Path]:
    """A WAV of spoken parts: text is said by espeak-ng, a number is that many seconds of silence."""
    if speech_tools_missing():
        pytest.skip(speech_tools_missing() or "")
    made = iter(range(1_000_000))
    return lambda *parts: spoken_wav(audio_dir / f"speech-{next(made)}.wav", *parts)


# Module scope: Playwright's sync API runs one instance per thread at a time, and other test
# modules (tests/, the emulator's) start their own.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    yield from running_playwright()


@pytest.fixture(scope="module")
def chromium(playwright: Any, silence: Path) -> Iterator[Any]:
    browser = launch_chromium(playwright, fake_microphone(silence))
    yield browser
    browser.close()


@pytest.fixture
def launch(playwright: Any) -> Iterator[Callable[..., Any]]:
    """Launch a Chromium of the test's own (e.g. with a speech WAV as its microphone)."""
    browsers: list[Any] = []

    def start(extra_flags: list[str] | None = None, without: list[str] | None = None) -> Any:
        browsers.append(launch_chromium(playwright, extra_flags or [], without=without or []))
        return browsers[-1]

    yield start
    for browser in browsers:
        browser.close()


@pytest.fixture
def problems() -> Iterator[list[str]]:
    """Console errors and warnings (CSP violations among them) and uncaught page errors; a test
    whose page threw an error nothing caught fails, whatever it asserted."""
    found: list[str] = []
    yield found
    assert uncaught_errors(found) == []


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture
def page(context: Any, problems: list[str]) -> Any:
    return watch_console(context.new_page(), problems)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and other test artifacts: test-artifacts/web/ at the repository root."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
