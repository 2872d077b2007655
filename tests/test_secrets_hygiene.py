"""Keys never leave the server: not in a response, a page, an asset or any service's log.

The whole local stack runs with a distinctive emulator API key (the key the gateway mints client
secrets with offline) and a distinctive token signing key; a voice session with tool calls,
turns and an end runs through it; then every byte the outside saw, and every log line, is
searched for both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from opencouch.testing.processes import ServiceProcess, Stack, running_stack
from opencouch.testing.servers import repo_root
from opencouch.testing.voice_client import VoiceClient

pytestmark = pytest.mark.e2e

EMULATOR_KEY = f"sk-emulator-distinctive-{uuid.uuid4().hex}"
SIGNING_KEY = f"signing-distinctive-{uuid.uuid4().hex}{uuid.uuid4().hex}"
SECRETS = (EMULATOR_KEY, SIGNING_KEY)


@pytest.fixture(scope="module")
def keyed_stack(
    nats_url: str, redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        log_dir=tmp_path_factory.mktemp("keyed-stack-logs"),
        env={
            "REALTIME_EMULATOR_API_KEYS": EMULATOR_KEY,
            "VOICE_GATEWAY_EMULATOR_API_KEY": EMULATOR_KEY,
            "VOICE_GATEWAY_TOKEN_SIGNING_KEYS": f"k1:{SIGNING_KEY}",
            "LOG_LEVEL": "DEBUG",
            "VOICE_GATEWAY_LOG_LEVEL": "DEBUG",
        },
    ) as running:
        yield running


def test_no_key_reaches_a_response_a_page_an_asset_or_a_log(keyed_stack: Stack) -> None:
    seen: list[str] = []
    with httpx.Client(base_url=keyed_stack.gateway_url, timeout=30) as http:
        browser = VoiceClient(http)
        thread_id = f"thread-keys-{uuid.uuid4().hex[:8]}"
        for reply in (
            browser.start(
                thread_id, user_id=f"user-{uuid.uuid4().hex[:8]}", memory_mode="persistent"
            ),
            browser.tool("wait_for_user"),
            browser.tool("show_memory_status"),
            browser.tool("lookup_crisis_resources", current_user_message="I'm in the UK"),
            browser.turn("k-1", "I feel a bit better today.", "I'm glad to hear it."),
            browser.turn("k-2", "Thanks for listening.", "Any time."),
            browser.end(feedback="positive"),
            browser.finalization(),
            http.get("/api/voice/openapi.json"),
            http.get("/api/voice/docs"),
            http.get("/readyz"),
        ):
            assert reply.status_code < 500, reply.text
            seen.append(reply.text)
            seen.append(str(reply.headers))
        assert browser.session["token"]

    static = repo_root() / "services" / "web" / "src" / "opencouch" / "web" / "static"
    with httpx.Client(base_url=keyed_stack.web_url, timeout=30) as web:
        paths = ["/voice", "/voice/realtime-dev", "/config.json"] + [
            f"/static/{path.relative_to(static)}" for path in static.rglob("*") if path.is_file()
        ]
        for path in paths:
            page = web.get(path)
            assert page.status_code == 200, path
            seen.append(page.text)
            seen.append(str(page.headers))

    logs = [
        service.log_path
        for service in keyed_stack.services.values()
        if isinstance(service, ServiceProcess)
    ]
    assert len(logs) == len(keyed_stack.services)
    for log in logs:
        seen.append(log.read_text(errors="replace"))
    for secret in SECRETS:
        leaks = [text[:200] for text in seen if secret in text]
        assert not leaks, f"a key leaked: {leaks}"
    assert any("voice session created" in log.read_text() for log in logs)
