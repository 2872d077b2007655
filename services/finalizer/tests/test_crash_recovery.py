"""A finalizer killed with SIGKILL in the middle of a finalization: after a restart the session
completes, once (one arc, one memory commit, one report).

"In the middle" is made certain, not hoped for: the model the finalizer asks for the arc is a
server that takes the request and never answers, so the finalizer is holding the session when
it is killed. The restarted one is pointed at the emulator, which answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from opencouch.contracts import subjects
from opencouch.finalizer.testing import WebhookReceiver
from opencouch.testing.database import rows
from opencouch.testing.processes import (
    ServiceProcess,
    Stack,
    nats_ping,
    running_stack,
    start_service,
)
from opencouch.testing.voice_client import VoiceClient

pytestmark = pytest.mark.e2e

SECRET = "whsec-crash-recovery-0123456789ab"
EMULATOR_KEY = "sk-emulator-local"
TURNS = [
    "My brother and I haven't spoken since the funeral and it weighs on me.",
    "I keep drafting messages to him and deleting them before I send anything.",
    "Part of me is angry he left me to sort out everything with the house.",
    "Maybe I'll send him a short text this weekend, nothing heavy.",
]


def wait_until(check: Callable[[], bool], timeout: float = 120) -> None:
    """Poll until ``check`` holds; generous, never an assertion on speed."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def hung_model() -> Iterator[WebhookReceiver]:
    """A 'model' that takes every request and never answers."""
    with WebhookReceiver() as server:
        server.hold.set()
        yield server


@pytest.fixture(scope="module")
def reports() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(
    nats_url: str,
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    hung_model: WebhookReceiver,
    reports: WebhookReceiver,
) -> Iterator[Stack]:
    with running_stack(
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        log_dir=tmp_path_factory.mktemp("crash"),
        with_web=False,
        env={
            "FINALIZER_SUMMARISER": "model",
            "FINALIZER_OPENAI_API_KEY": EMULATOR_KEY,
            "FINALIZER_OPENAI_BASE_URL": hung_model.url.rsplit("/", 1)[0] + "/v1",
            "FINALIZER_SUMMARY_TIMEOUT_SECONDS": "600",
            "FINALIZER_HANDLE_TIMEOUT_SECONDS": "900",
            "FINALIZER_ACK_WAIT_SECONDS": "5",
            "FINALIZER_WEBHOOK_URL": reports.url,
            "FINALIZER_WEBHOOK_SECRET": SECRET,
            "FINALIZER_WEBHOOK_POLL_SECONDS": "0.5",
        },
    ) as running:
        yield running


def test_a_finalizer_killed_mid_finalization_completes_the_session_once_after_a_restart(
    stack: Stack, hung_model: WebhookReceiver, reports: WebhookReceiver
) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        browser = VoiceClient(http)
        started = browser.start(f"thread-crash-{uuid.uuid4().hex[:10]}", memory_mode="persistent")
        assert started.status_code == 200, started.text
        session_id = browser.session_id
        for n, said in enumerate(TURNS):
            assert browser.turn(f"crash-{n}", said, "I hear you.").status_code == 200
        ended = browser.end()
        assert ended.status_code == 202, ended.text  # the model never answers this finalizer

        wait_until(lambda: len(hung_model.received) == 1)
        assert rows(
            stack.database_url,
            "SELECT status FROM finalizer.finalizations WHERE session_id = %s",
            session_id,
        ) == [("in_progress",)]

        killed = stack.services["finalizer"]
        assert isinstance(killed, ServiceProcess)
        killed.process.kill()
        killed.process.wait()
        restarted = start_service(
            "finalizer",
            killed.module,
            {**killed.env, "FINALIZER_OPENAI_BASE_URL": f"{stack.emulator_url}/v1"},
            killed.log_path.parent,
            nats_ping(
                subjects.FINALIZER_SERVICE, killed.log_path.parent / "finalizer.id", stack.nats_url
            ),
        )
        stack.services["finalizer"] = restarted
        restarted.wait_healthy()

        finals: list[httpx.Response] = []

        def finalized() -> bool:
            finals.append(browser.finalization())
            return finals[-1].status_code == 200

        wait_until(finalized)
        result = finals[-1].json()

    assert (result["finalized"], result["turn_count"]) == (True, 4)
    assert result["summary"]
    ((status, method, attempts),) = rows(
        stack.database_url,
        "SELECT status, summary_method, attempts FROM finalizer.finalizations "
        "WHERE session_id = %s",
        session_id,
    )
    assert (status, method) == ("completed", "model")
    assert isinstance(attempts, int)
    assert attempts >= 2  # the killed attempt, then the one that completed
    assert len(hung_model.received) == 1  # the restarted finalizer asked the emulator
    assert rows(
        stack.database_url,
        "SELECT count(*) FROM memory.session_summaries WHERE source_session_id = %s",
        session_id,
    ) == [(1,)]
    assert rows(
        stack.database_url,
        "SELECT count(*) FROM memory.committed_sessions WHERE session_id = %s",
        session_id,
    ) == [(1,)]

    def delivered() -> bool:
        return rows(
            stack.database_url,
            "SELECT status FROM finalizer.webhook_deliveries WHERE session_id = %s",
            session_id,
        ) == [("delivered",)]

    wait_until(delivered)
    ours = reports.of(session_id)
    assert len(ours) == 1
