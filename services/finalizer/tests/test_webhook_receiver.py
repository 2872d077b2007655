"""The tests' webhook receiver scripts its answers for one session's reports only.

The finalizer tests share the run's database, and a report an earlier test's finalizer left
pending is retried by whichever finalizer runs next, to that test's receiver: it must neither
take the answers scripted for the test's own session nor count among its reports.
"""

from __future__ import annotations

import json

import httpx

from opencouch.finalizer.testing import WebhookReceiver


def post(url: str, session_id: str) -> int:
    body = json.dumps({"session_id": session_id, "status": "completed"})
    return httpx.post(url, content=body, timeout=10).status_code


def test_scripted_answers_go_to_the_given_sessions_reports_alone() -> None:
    with WebhookReceiver(statuses=[500, 503], session_id="vs_ours") as receiver:
        assert post(receiver.url, "vs_left_over") == 200
        assert post(receiver.url, "vs_ours") == 500
        assert post(receiver.url, "vs_left_over") == 200
        assert post(receiver.url, "vs_ours") == 503
        assert post(receiver.url, "vs_ours") == 200
    assert [r.status for r in receiver.of("vs_ours")] == [500, 503, 200]
    assert [r.status for r in receiver.delivered("vs_ours")] == [200]
    assert [r.status for r in receiver.of("vs_left_over")] == [200, 200]
    assert len(receiver.received) == 5


def test_without_a_session_the_answers_go_to_every_report_in_turn() -> None:
    with WebhookReceiver(statuses=[500]) as receiver:
        assert post(receiver.url, "vs_a") == 500
        assert post(receiver.url, "vs_b") == 200
    assert [r.session_id for r in receiver.received] == ["vs_a", "vs_b"]
