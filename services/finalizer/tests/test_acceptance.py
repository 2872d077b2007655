"""The whole product as real processes, with three finalizer replicas and a webhook receiver:
ten concurrent ``/end`` calls make one arc, one memory commit and one report; a persistent
session of five substantive turns gets a summary and themes offline; an incognito end leaves no
durable row but the scrubbed crisis log."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.finalizer import SIGNATURE_HEADER, SessionReport
from opencouch.finalizer.testing import WebhookReceiver
from opencouch.finalizer.webhooks import verify_signature
from opencouch.testing.database import assert_no_trace, rows
from opencouch.testing.processes import (
    ServiceProcess,
    Stack,
    nats_ping,
    running_stack,
    start_service,
)
from opencouch.testing.voice_client import API, VoiceClient

pytestmark = pytest.mark.e2e

SECRET = "whsec-acceptance-0123456789abcdef"
FIVE_TURNS = [
    ("Work has been brutal, my manager piles on deadlines every single day.", "That's a lot."),
    ("I can't sleep because I keep replaying meetings in my head.", "That sounds exhausting."),
    ("My partner says I've been distant and we argued about it again.", "That must sting."),
    ("What can I do when my thoughts race at night?", "Try writing the worries down first."),
    ("Thanks, that helps. I'll try writing things down before bed.", "That's a good plan."),
]


def wait_until(check: Callable[[], bool], timeout: float = 120) -> None:
    """Poll until ``check`` holds; generous, never an assertion on speed."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


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
    reports: WebhookReceiver,
) -> Iterator[Stack]:
    """Every service, and two more finalizer replicas beside the stack's own."""
    log_dir = tmp_path_factory.mktemp("acceptance")
    finalizer_env = {
        "FINALIZER_SUMMARISER": "extractive",
        "FINALIZER_WEBHOOK_URL": reports.url,
        "FINALIZER_WEBHOOK_SECRET": SECRET,
        "FINALIZER_WEBHOOK_POLL_SECONDS": "0.5",
    }
    with running_stack(
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        log_dir=log_dir,
        with_web=False,
        env=finalizer_env,
    ) as running:
        replicas: list[ServiceProcess] = []
        for n in (2, 3):
            id_file = log_dir / f"finalizer-{n}.id"
            replicas.append(
                start_service(
                    f"finalizer-{n}",
                    "opencouch.finalizer",
                    {
                        "NATS_URL": nats_url,
                        "DATABASE_URL": database_url,
                        "FINALIZER_ID_FILE": str(id_file),
                        **finalizer_env,
                    },
                    log_dir,
                    nats_ping(subjects.FINALIZER_SERVICE, id_file, nats_url),
                )
            )
        try:
            for replica in replicas:
                replica.wait_healthy()
            yield running
        finally:
            assert [replica.stop() for replica in replicas] == [0, 0]


def end_once(gateway_url: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        return client.post(
            f"{API}/end",
            json={"feedback": "positive"},
            headers={"Authorization": f"Bearer {token}"},
        )


def memory_commits(log_path: Path, session_id: str) -> list[bool]:
    """Each commit memory logged for the session: whether it was already committed."""
    commits = []
    for line in log_path.read_text(errors="replace").splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if (
            entry.get("msg") == "memory candidates committed"
            and entry.get("session_id") == session_id
        ):
            commits.append(bool(entry.get("already")))
    return commits


def test_ten_concurrent_ends_across_three_replicas_make_one_arc_one_commit_one_report(
    stack: Stack, reports: WebhookReceiver
) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        browser = VoiceClient(http)
        thread_id = f"thread-acc-{uuid.uuid4().hex[:10]}"
        started = browser.start(thread_id, user_id=f"user-acc-{uuid.uuid4().hex[:8]}",
                                memory_mode="persistent")  # fmt: skip
        assert started.status_code == 200, started.text
        session_id = browser.session_id
        for n, (said, answered) in enumerate(FIVE_TURNS):
            reply = browser.turn(f"acc-{n}", said, answered)
            assert reply.status_code == 200, reply.text

        with ThreadPoolExecutor(max_workers=10) as pool:
            ends = list(pool.map(lambda _: end_once(stack.gateway_url, browser.token), range(10)))
        assert sorted({end.status_code for end in ends}) in ([200], [200, 202], [202]), [
            end.text for end in ends
        ]
        finals: list[httpx.Response] = []

        def finalized() -> bool:
            finals.append(browser.finalization())
            return finals[-1].status_code == 200

        wait_until(finalized)
        final = finals[-1]
        assert final.status_code == 200, final.text
        result = final.json()

    # The offline arc of five substantive turns: a summary and themes.
    assert (result["finalized"], result["turn_count"]) == (True, 5)
    assert result["summary"]
    assert {"work", "sleep", "relationships"} <= set(result["themes"])
    for end in ends:
        if end.status_code == 200:
            assert end.json()["summary"] == result["summary"]
            assert end.json()["finalized_at"] == result["finalized_at"]

    # One arc, one memory commit, one report, whichever replica got which end.
    # The tools service classified every turn; the peak is their highest level (none at risk).
    assert rows(
        stack.database_url,
        "SELECT status, summary_method, turn_count, peak_crisis_level "
        "FROM finalizer.finalizations WHERE session_id = %s",
        session_id,
    ) == [("completed", "extractive", 5, 0)]
    assert rows(
        stack.database_url,
        "SELECT summary_text FROM memory.session_summaries WHERE source_session_id = %s",
        session_id,
    ) == [(result["summary"],)]
    memory_log = stack.services["memory"]
    assert isinstance(memory_log, ServiceProcess)
    assert memory_commits(memory_log.log_path, session_id) == [False]
    assert rows(
        stack.database_url,
        "SELECT label, turn_count FROM finalizer.session_feedback WHERE session_id = %s",
        session_id,
    ) == [("positive", 5)]

    def delivered() -> bool:
        return rows(
            stack.database_url,
            "SELECT 1 FROM finalizer.webhook_deliveries WHERE session_id = %s "
            "AND status = 'delivered'",
            session_id,
        ) == [(1,)]

    wait_until(delivered)
    ours = reports.of(session_id)
    assert len(ours) == 1
    assert verify_signature(SECRET, ours[0].headers[SIGNATURE_HEADER], ours[0].body)
    report = SessionReport.model_validate_json(ours[0].body)
    assert (report.summary, report.status) == (result["summary"], "completed")


def test_an_incognito_end_leaves_no_durable_row_but_the_scrubbed_crisis_log(stack: Stack) -> None:
    thread_id = f"thread-incognito-{uuid.uuid4().hex[:10]}"
    user_id = f"user-incognito-{uuid.uuid4().hex[:8]}"
    words = f"I want to end my life tonight, Quillon-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        browser = VoiceClient(http)
        assert browser.start(thread_id, user_id=user_id).status_code == 200
        session_id = browser.session_id
        assert browser.turn("inc-1", words, "I'm here with you.").json()["recorded"] is False
        ended = browser.end(feedback="negative")
        assert ended.status_code == 200
        assert ended.json()["finalized"] is False
        assert ended.json()["status"] is None
        assert "Incognito" in ended.json()["detail"]

    def crisis_logged() -> bool:
        return bool(
            rows(
                stack.database_url,
                "SELECT 1 FROM tools.crisis_log WHERE session_hash = %s AND level >= 2",
                hashlib.sha256(session_id.encode()).hexdigest(),
            )
        )

    wait_until(crisis_logged)
    assert_no_trace(stack.database_url, [session_id, thread_id, user_id, "Quillon"])
