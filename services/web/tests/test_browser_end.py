"""/voice in a real Chromium: the person's End, when it waits, fails or is followed by another
conversation. The End's choice (save or not, feedback) is theirs alone: a reload, a network
that drops it or the next conversation must neither change it nor lose it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opencouch.web.testing import (
    FakeGateway,
    closed_turns,
    connect,
    eventually,
    outbox_waiting,
    reload,
    say,
)

WAIT_MS = 30_000
# The page's wait for turns still unsent before it ends anyway (conversation.js SETTLE_MS).
SETTLE_S = 30
STORED_LAST = "() => JSON.parse(localStorage.getItem('opencouch.conversation.v1')).last"


def a_turn_stored(page: Any, web_url: str, fake: FakeGateway, said: str) -> None:
    """A persistent conversation whose one turn the gateway has stored."""
    connect(page, web_url, persistent=True)
    say(page, said)
    closed_turns(page, 1)
    eventually(lambda: fake.turns)


def gateway_refuses(route: Any) -> None:
    """A /turn the gateway cannot take yet, every time: 503 with Retry-After."""
    route.fulfill(
        status=503,
        headers={
            "Retry-After": "2",
            "Content-Type": "application/json",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": "Retry-After",
        },
        body='{"error":{"code":"service_unavailable","message":"Try again."}}',
    )


def test_a_reload_while_end_without_saving_waits_ends_the_session_without_saving(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.failing_turns = 3  # the End waits for the last turn, retried after Retry-After: 1
    connect(page, web_url, persistent=True)
    say(page, "Something I do not want kept.")
    closed_turns(page, 1)
    outbox_waiting(page)
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="ending"]')
    reload(page)
    eventually(lambda: fake.ends, timeout=20)
    time.sleep(2)  # the ended tab's /end, if it sent one before the reload, is in too
    assert [end["save"] for end in fake.ends] == [False] * len(fake.ends)


def test_an_end_that_never_reached_the_gateway_can_be_pressed_again(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    a_turn_stored(page, web_url, fake, "Something I do not want kept.")
    page.route("**/api/voice/realtime/end", lambda route: route.abort())
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="end_failed"]', timeout=WAIT_MS)
    # Said, and the session is not ended: nothing says it was, and End is there to press again.
    assert page.is_visible("#error")
    assert "could not be ended" in page.text_content("#error-message")
    assert page.get_attribute("#finalization", "data-status") == "idle"
    assert page.is_visible("#end-discard")
    assert page.evaluate(STORED_LAST).get("ended") is not True
    assert fake.ends == []

    page.unroute("**/api/voice/realtime/end")
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    assert page.text_content("#finalization .fin-status") == "Ended without saving"
    assert page.is_hidden("#error")
    assert [end["save"] for end in fake.ends] == [False]
    assert page.evaluate(STORED_LAST)["ended"] is True


def test_an_end_that_never_reached_the_gateway_is_sent_as_chosen_after_a_reload(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    a_turn_stored(page, web_url, fake, "A hard day.")
    page.check('input[name="feedback"][value="negative"]')
    page.route("**/api/voice/realtime/end", lambda route: route.abort())
    page.click("#end-keep")
    page.wait_for_selector('#connection-state[data-state="end_failed"]', timeout=WAIT_MS)
    page.unroute("**/api/voice/realtime/end")
    reload(page)
    [end] = eventually(lambda: fake.ends, timeout=20)
    assert (end["save"], end["feedback"]) == (True, "negative")
    assert "continued" not in end


def test_an_end_whose_retry_at_connect_failed_too_is_sent_as_chosen_after_a_reload(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    a_turn_stored(page, web_url, fake, "Something I do not want kept.")
    [first] = fake.sessions
    page.route("**/api/voice/realtime/end", lambda route: route.abort())
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="end_failed"]', timeout=WAIT_MS)
    # Connect while the network still drops every /end: the new session replaces the stored
    # `last`, and the retry of the first one's End fails too. The reload is all that is left.
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    assert page.evaluate(STORED_LAST)["session_id"] != first
    reload(page)
    page.unroute("**/api/voice/realtime/end")
    ended = eventually(lambda: [e for e in fake.ends if e["session_id"] == first], timeout=20)
    assert [(end["save"], end.get("continued")) for end in ended] == [(False, None)]


def test_a_new_conversation_starts_with_no_feedback_given(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url, persistent=True)
    say(page, "First conversation.")
    closed_turns(page, 1)
    page.check('input[name="feedback"][value="negative"]')
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    page.click("#new-thread")
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    assert page.query_selector('input[name="feedback"]:checked') is None
    page.click("#end-keep")  # no feedback this time
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    assert fake.ends[0]["feedback"] == "negative"
    assert "feedback" not in fake.ends[-1]


def test_the_last_conversations_summary_never_replaces_the_next_ones_card(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.pending_polls = 4  # polled at +1, +2, +3 and +4 s: in progress, then completed
    connect(page, web_url, persistent=True)
    say(page, "First conversation.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="in_progress"]', timeout=WAIT_MS)
    page.click("#new-thread")
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    time.sleep(8)  # past every poll the last conversation's card would have made
    assert page.get_attribute("#finalization", "data-status") == "idle"
    assert page.text_content("#finalization .fin-status") == "Not ended yet"


def test_a_turn_still_unsent_when_the_end_can_wait_no_longer_is_said_to_be_lost(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    page.route("**/api/voice/realtime/turn", gateway_refuses)
    connect(page, web_url, persistent=True)
    say(page, "Please remember this part.")
    closed_turns(page, 1)
    outbox_waiting(page)
    page.click("#end-keep")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=(SETTLE_S + 15) * 1000)
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    assert "could not be sent before the session ended" in page.text_content("#error-message")
    assert page.get_attribute("#error", "role") == "alert"
    # The turn, refused by the ended session, leaves the outbox: the notice stays.
    page.unroute("**/api/voice/realtime/turn")
    page.wait_for_function(
        "() => document.getElementById('outbox-status').textContent === ''", timeout=WAIT_MS
    )
    assert fake.turns == {}
    assert page.is_visible("#error")
