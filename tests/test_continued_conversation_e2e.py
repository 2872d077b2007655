"""A conversation that goes on in a new voice session after its call dropped, end to end: every
service a real process on real NATS, Redis and Postgres.

The page ends the dropped session with ``continued`` and the conversation's last ``/end``
decides for all of it: "end without saving" leaves no summary and no new memory of any part of
the conversation, and "end and keep" finalizes every part with its summary. The turns are
stored either way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from opencouch.testing import database
from opencouch.testing.processes import Stack
from opencouch.testing.voice_client import VoiceClient

pytestmark = pytest.mark.e2e

BEFORE_THE_DROP = [
    "I've been really anxious about work lately, my boss keeps moving the deadline.",
    "I am a nurse and I work nights at the hospital.",
    "I lie awake after my shifts going over everything, so my sleep is a mess.",
]
AFTER_THE_DROP = [
    "Is it normal to feel this wiped out after only a few bad nights of sleep?",
    "My sister is called Ana and she visits on Sundays.",
    "Thanks, that helps. I think I'll try to stop checking my phone after nine.",
    "I feel a bit calmer now, and hopeful about tomorrow.",
]


@pytest.fixture
def browser(stack: Stack) -> Iterator[VoiceClient]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        yield VoiceClient(http)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def rows(stack: Stack, query: str, *params: object) -> list[tuple[object, ...]]:
    return database.rows(stack.database_url, query, *params)


def pairs(stack: Stack, query: str, *params: object) -> dict[object, object]:
    return {row[0]: row[1] for row in rows(stack, query, *params)}


def speak(browser: VoiceClient, lines: list[str]) -> None:
    for line in lines:
        reply = browser.turn(unique("turn"), line, "I'm listening. Tell me more.")
        assert reply.status_code == 200, reply.text


def finalized(stack: Stack, session_id: str) -> tuple[object, ...]:
    """The session's finalization (status, summary), once it is final."""
    for _ in range(240):
        found = rows(
            stack,
            "SELECT status, summary FROM finalizer.finalizations WHERE session_id = %s",
            session_id,
        )
        if found and found[0][0] in ("completed", "failed"):
            return found[0]
        time.sleep(0.25)
    raise AssertionError(f"{session_id} was not finalized")


@pytest.mark.parametrize("save", [False, True], ids=["without-saving", "keep"])
def test_the_last_end_of_a_conversation_decides_for_the_session_before_the_drop(
    stack: Stack, browser: VoiceClient, save: bool
) -> None:
    thread_id, user_id = unique("thread-continued"), unique("user-continued")
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    dropped = browser.session_id
    speak(browser, BEFORE_THE_DROP)

    # The call drops: the page ends the session as continued and carries on in a new one.
    continued = browser.end(continued=True)
    assert continued.status_code == 202, continued.text
    assert (continued.json()["status"], continued.json()["turn_count"]) == ("pending", 3)
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    current = browser.session_id
    speak(browser, AFTER_THE_DROP)
    # Nothing was finalized at the drop.
    assert rows(stack, "SELECT 1 FROM finalizer.finalizations WHERE session_id = %s", dropped) == []

    ended = browser.end(save=save, feedback="positive")
    assert ended.status_code in (200, 202), ended.text
    outcomes = {session: finalized(stack, session) for session in (dropped, current)}

    stored = pairs(
        stack,
        "SELECT session_id, count(*) FROM memory.turns WHERE thread_id = %s GROUP BY session_id",
        thread_id,
    )
    assert stored == {dropped: 3, current: 4}
    counted = pairs(
        stack,
        "SELECT session_id, turn_count FROM finalizer.finalizations WHERE thread_id = %s",
        thread_id,
    )
    assert counted == {dropped: 3, current: 4}
    summaries = rows(
        stack,
        "SELECT source_session_id FROM memory.session_summaries WHERE source_thread_id = %s",
        thread_id,
    )
    facts = rows(
        stack,
        "SELECT source_session_id, fact_text FROM memory.facts WHERE owner_key = %s",
        f"user:{user_id}",
    )
    feedback = pairs(
        stack,
        "SELECT session_id, label FROM finalizer.session_feedback WHERE session_id IN (%s, %s)",
        dropped,
        current,
    )
    if not save:
        assert outcomes == {dropped: ("completed", None), current: ("completed", None)}
        assert summaries == []
        assert facts == []
    else:
        assert {session: status for session, (status, _) in outcomes.items()} == {
            dropped: "completed",
            current: "completed",
        }
        assert all(summary for _, summary in outcomes.values()), outcomes
        assert {s for (s,) in summaries} == {dropped, current}
        assert set(facts) == {(dropped, "I am a nurse."), (current, "My sister is called Ana.")}
    # The conversation's feedback covers both parts of it.
    assert feedback == {dropped: "positive", current: "positive"}
