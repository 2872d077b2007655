"""/voice and /voice/realtime-dev in a real Chromium, with the CSP enforced, over real WebRTC to
the real Realtime emulator, against a fake of the voice API (``opencouch.web.testing``).

These test the page's own behaviour; tests/test_web_voice_e2e.py runs the same page against
every real service. Needs ``playwright``, Chromium, espeak-ng and sox; skips with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from opencouch.realtime_emulator.testing import RunningEmulator
from opencouch.testing.browser import fake_microphone, watch_console
from opencouch.web.testing import (
    FakeGateway,
    closed_turns,
    connect,
    eventually,
    open_page,
    outbox_waiting,
    ready,
    record_states,
    reload,
    say,
)

WAIT_MS = 30_000


def call_log(emulator: RunningEmulator, call_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{emulator.url}/v1/realtime/calls/{call_id}/log",
        headers={"Authorization": "Bearer sk-emulator-local"},
        timeout=10,
    )
    reply.raise_for_status()
    entries: list[dict[str, Any]] = reply.json()["log"]
    return entries


def calls(emulator: RunningEmulator) -> list[dict[str, Any]]:
    reply = httpx.get(f"{emulator.url}/_emulator/calls", timeout=10)
    reply.raise_for_status()
    body = reply.json()
    found: list[dict[str, Any]] = body["calls"] if isinstance(body, dict) else body
    return found


def test_a_typed_turn_with_a_tool_call_shows_in_the_panel_and_its_output_reaches_the_model(
    web_url: str,
    fake: FakeGateway,
    page: Any,
    emulator: RunningEmulator,
    scenario: Callable[..., None],
    problems: list[str],
) -> None:
    connect(page, web_url)
    say(page, "Is memory on?")
    turns = closed_turns(page, 1)
    assert turns[0]["user"] == "Is memory on?"
    assert turns[0]["assistant"], turns

    row = page.locator('#tools-body tr[data-status="done"]')
    assert row.locator(".tool-name").text_content() == "show_memory_status"
    assert row.locator(".tool-status").text_content() == "Done"
    assert row.locator(".tool-time").text_content().endswith(("ms", " s"))

    # The gateway got the call once, with its call_id and the user's words.
    [request] = fake.tool_requests
    assert request["tool_name"] == "show_memory_status"
    assert request["current_user_message"] == "Is memory on?"
    # The output went back to the model, followed by one response.create.
    sent = client_events(emulator, latest_call(emulator))
    outputs = [
        e
        for e in sent
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert [json.loads(o["item"]["output"]) for o in outputs] == [
        {"memory_enabled": False, "mode": "incognito", "saved": []}
    ]
    after = sent[sent.index(outputs[0]) + 1 :]
    assert [e["type"] for e in after].count("response.create") == 1

    # And the turn was recorded with its tool call.
    [turn] = eventually(lambda: list(fake.turns.values()))
    assert turn["user_text"] == "Is memory on?"
    assert turn["tool_calls"][0]["tool_name"] == "show_memory_status"
    assert turn["tool_calls"][0]["status"] == "completed"
    assert turn["latency"]["session_minted_ms"] >= 0
    assert all(t.startswith("00-") for t in fake.traceparents)
    assert problems == []


def test_a_long_tool_name_leaves_the_other_columns_readable(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url)
    say(page, "Can you help me calm down with a breathing exercise?")
    closed_turns(page, 1)
    row = page.locator('#tools-body tr[data-status="done"]').first
    assert row.locator(".tool-name").text_content() == "load_guided_exercise_skill"
    # A name breaks after its underscores before it breaks anywhere.
    assert row.locator(".tool-name wbr").count() == 3
    # Every cell but a tool's name reads on one line: no "Statu s" in a squeezed column.
    lines = page.evaluate(
        """() => [...document.querySelectorAll('.tools th, .tools .tool-status, .tools .tool-time')]
            .map(cell => {
                const range = document.createRange();
                range.selectNodeContents(cell);
                return [cell.textContent, range.getClientRects().length];
            })"""
    )
    assert len(lines) >= 5, lines
    assert all(count == 1 for _, count in lines), lines


def latest_call(emulator: RunningEmulator) -> str:
    """The id of the newest call the emulator has seen."""
    found = calls(emulator)
    call_id: str = max(found, key=lambda c: c.get("started_at", 0))["call_id"]
    return call_id


def client_events(emulator: RunningEmulator, call_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in call_log(emulator, call_id) if e["direction"] == "in"]


def server_events(emulator: RunningEmulator, call_id: str) -> list[str]:
    """The types of the events the emulator sent on the call."""
    return [e["event"]["type"] for e in call_log(emulator, call_id) if e["direction"] == "out"]


def test_two_spoken_utterances_show_both_user_lines_and_both_replies(
    web_url: str,
    fake: FakeGateway,
    scenario: Callable[..., None],
    speech: Callable[..., Path],
    launch: Callable[..., Any],
    problems: list[str],
) -> None:
    scenario(
        {
            "turns": [
                {"user": "I had a long day at work.", "say": "That sounds tiring. What happened?"},
                {"user": "My manager moved a deadline.", "say": "That is a lot to absorb."},
            ],
            "faults": {"late_transcription": True},
        }
    )
    # Leading silence covers the call's setup; the gap lets the first reply finish playing.
    wav = speech(4.0, "I had a long day at work.", 7.0, "My manager moved a deadline.", 2.0)
    page = watch_console(launch(fake_microphone(wav)).new_page(), problems)
    connect(page, web_url)
    # The level meter moves while the person speaks.
    page.wait_for_function(
        "() => document.getElementById('mic-level').value > 0.2", timeout=WAIT_MS
    )
    turns = closed_turns(page, 2)
    assert [t["user"] for t in turns] == [
        "I had a long day at work.",
        "My manager moved a deadline.",
    ]
    assert [t["assistant"] for t in turns] == [
        ["That sounds tiring. What happened?"],
        ["That is a lot to absorb."],
    ]
    recorded = eventually(lambda: len(fake.turns) == 2 and list(fake.turns.values()))
    assert [t["user_text"] for t in recorded] == [t["user"] for t in turns]
    # The user's speech end to the first audio of the reply, measured by the page.
    assert all(t["latency"]["first_audio_ms"] > 0 for t in recorded)
    assert recorded[0]["started_at"] < recorded[1]["started_at"]
    assert problems == []


def test_barge_in_cuts_the_shown_reply_to_what_was_heard(
    web_url: str,
    fake: FakeGateway,
    scenario: Callable[..., None],
    speech: Callable[..., Path],
    launch: Callable[..., Any],
    problems: list[str],
) -> None:
    long_reply = (
        "I hear you, and I want to take this slowly with you, one piece at a time, because "
        "there is a lot here and none of it has to be solved tonight, so let us start small."
    )
    scenario(
        {
            "turns": [
                {"user": "Can I tell you something?", "say": long_reply},
                {"user": "Sorry, wait.", "say": "Of course."},
            ],
            "generation_speed": 1.0,
        }
    )
    wav = speech(4.0, "Can I tell you something?", 3.0, "Sorry, wait.", 3.0)
    page = watch_console(launch(fake_microphone(wav)).new_page(), problems)
    connect(page, web_url)
    # The reply streams into the transcript while it is still being spoken.
    page.wait_for_selector('#transcript .turn[data-state="open"] .assistant', timeout=WAIT_MS)
    turns = closed_turns(page, 2)
    note = page.locator("#transcript .turn").first.locator(".assistant .note").text_content()
    [heard] = turns[0]["assistant"]
    assert heard
    assert heard != long_reply
    assert long_reply.startswith(heard)
    assert note == "interrupted"
    recorded = eventually(lambda: len(fake.turns) == 2 and list(fake.turns.values()))
    assert recorded[0]["assistant_text"] == heard
    assert problems == []


def test_a_turn_whose_turn_call_failed_is_delivered_after_a_reload_exactly_once(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.failing_turns = 1000
    connect(page, web_url, persistent=True)
    say(page, "Please keep this one.")
    closed_turns(page, 1)
    outbox_waiting(page)
    stored = page.evaluate("() => localStorage.getItem('opencouch.outbox.v1')")
    assert "Please keep this one." in stored
    [turn_id] = {a["client_turn_id"] for a in fake.turn_attempts}

    fake.failing_turns = 0
    reload(page)
    eventually(lambda: fake.turns)
    page.wait_for_function("() => localStorage.getItem('opencouch.outbox.v1') === null")
    assert [key[1] for key in fake.turns] == [turn_id]
    assert {a["client_turn_id"] for a in fake.turn_attempts} == {turn_id}
    # The session the reload left open is ended once its turn is in.
    [end] = eventually(lambda: fake.ends)
    assert end["turns_acknowledged"] == 1
    assert end["save"] is True
    # And the delivered turn shows as earlier conversation.
    page.wait_for_selector("#history:not([hidden]) .turn")
    assert "Please keep this one." in page.text_content("#history-list")


def test_a_message_typed_while_a_reply_plays_leaves_no_turn_open(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    """The second reply's audio runs straight after the first's: the first turn closes once it
    has played, though no stop comes between the two (the emulator sends none, and the service
    need not: one buffer, one stop), and the turns are stored in the order they were said."""
    connect(page, web_url, persistent=True)
    say(page, "I had a rough week and I feel really stressed about work.")
    page.wait_for_selector("#transcript .assistant .said", timeout=WAIT_MS)
    say(page, "Is memory on?")
    turns = closed_turns(page, 2)
    assert [t["state"] for t in turns] == ["completed", "completed"]
    stored = eventually(lambda: len(fake.turns) == 2 and list(fake.turns.values()))
    assert [t["user_text"] for t in stored] == [
        "I had a rough week and I feel really stressed about work.",
        "Is memory on?",
    ]
    assert [t["assistant_text"] for t in stored] == [t["assistant"][0] for t in turns]


def test_a_turn_the_gateway_could_not_take_yet_is_retried_by_the_page_on_its_own(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    """Two 503s with Retry-After: 1, then the page's own timer delivers the turn, no reload."""
    fake.failing_turns = 2
    connect(page, web_url, persistent=True)
    say(page, "Keep trying with this one.")
    closed_turns(page, 1)
    eventually(lambda: fake.turns, timeout=15)
    assert len(fake.turn_attempts) == 3
    assert len({a["client_turn_id"] for a in fake.turn_attempts}) == 1
    page.wait_for_function("() => localStorage.getItem('opencouch.outbox.v1') === null")


def test_ending_while_a_turn_is_still_on_its_way_ends_once_the_turn_is_in(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    """End pressed while the last turn waits to be retried: the end waits for it, then ends."""
    fake.failing_turns = 1
    connect(page, web_url, persistent=True)
    say(page, "One more thing before I go.")
    closed_turns(page, 1)
    outbox_waiting(page)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    [end] = fake.ends
    assert end["turns_acknowledged"] == 1
    assert page.get_attribute("#connection-state", "data-state") == "ended"


def test_session_expired_continues_in_a_new_session_with_the_recent_turns(
    web_url: str,
    fake: FakeGateway,
    page: Any,
    emulator: RunningEmulator,
    scenario: Callable[..., None],
    product_scenario: str,
) -> None:
    scenario(product_scenario + "\nfaults: {max_session_seconds: 20}\n")
    connect(page, web_url)
    seen = record_states(page)
    first_call = latest_call(emulator)
    # A call takes its scenario when it starts: the next one follows the plain scenario.
    scenario(product_scenario)
    say(page, "My sister is visiting this weekend.")
    closed_turns(page, 1)
    # Reconnecting may pass in a moment: the states are recorded, not caught in passing.
    eventually(lambda: seen()[-2:] == ["reconnecting", "connected"], timeout=60)
    second_call = eventually(lambda: latest_call(emulator) != first_call and latest_call(emulator))
    say(page, "I feel a bit stressed about it.")
    turns = closed_turns(page, 2)
    assert [t["user"] for t in turns] == [
        "My sister is visiting this weekend.",
        "I feel a bit stressed about it.",
    ]
    # The new session is on the same thread (its secret sent) and the model was given the
    # earlier turn, so it can carry on.
    first, second = fake.session_requests
    assert second["thread_id"] == first["thread_id"]
    assert second["thread_secret"] == fake.thread_secrets[first["thread_id"]]
    context = [
        e
        for e in client_events(emulator, second_call)
        if e["type"] == "conversation.item.create" and e["item"].get("role") == "system"
    ]
    assert len(context) == 1
    assert "User: My sister is visiting this weekend." in context[0]["item"]["content"][0]["text"]
    recorded = eventually(lambda: len(fake.turns) == 2 and list(fake.turns))
    assert len({session_id for session_id, _ in recorded}) == 2
    # The expired session was ended once its turn was in, as continued: the conversation's
    # last End decides whether any of it is kept.
    [ended] = eventually(lambda: fake.ends)
    assert ended["session_id"] == recorded[0][0]
    assert ended["continued"] is True
    assert "save" not in ended
    assert "feedback" not in ended


def test_a_duplicated_function_call_runs_the_tool_once(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None], product_scenario: str
) -> None:
    scenario(
        product_scenario
        + "\nfaults: {duplicate: [response.function_call_arguments.done, response.output_item.done, response.done]}\n"
    )
    connect(page, web_url)
    say(page, "Is memory on?")
    closed_turns(page, 1)
    assert len(fake.tool_requests) == 1
    assert page.locator("#tools-body tr").count() == 1


def test_a_tool_that_times_out_shows_as_failed_and_the_conversation_goes_on(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.tool_delays["show_memory_status"] = 1.0
    fake.tool_failures["show_memory_status"] = "tool_timeout"
    connect(page, web_url)
    say(page, "Is memory on?")
    turns = closed_turns(page, 1)
    row = page.locator('#tools-body tr[data-status="failed"]')
    assert row.locator(".tool-status").text_content() == "Failed"
    assert turns[0]["assistant"], "the model still spoke after the failed output"
    [turn] = eventually(lambda: list(fake.turns.values()))
    assert turn["tool_calls"] == [
        {
            "tool_name": "show_memory_status",
            "status": "failed",
            "output": {
                "status": "error",
                "error": {"code": "tool_timeout", "message": "It failed."},
            },
            "error": "tool_timeout",
        }
    ]


def test_a_lost_first_reply_does_not_lock_the_browser_out_of_its_new_conversation(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    # The gateway made the thread's secret and sent its only copy in that reply: once the reply
    # was lost, every later Connect on the thread was refused as someone else's conversation.
    fake.lost_session_replies = 1
    open_page(page, f"{web_url}/voice")
    page.click("#connect")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    first, second = fake.session_requests
    assert second["thread_id"] == first["thread_id"]
    assert second["thread_secret"] == first["thread_secret"]
    assert fake.thread_secrets[first["thread_id"]] == first["thread_secret"]


def test_crisis_resources_are_cards_from_the_lookup_output_only(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url)
    assert page.is_hidden("#crisis")
    say(page, "Sometimes I want to die.")
    closed_turns(page, 1)
    cards = page.locator("#crisis-cards .card")
    assert cards.count() == 2
    assert cards.nth(0).locator("h4").text_content() == "9-8-8 Suicide Crisis Helpline"
    assert cards.nth(0).locator("a.card-action").get_attribute("href") == "tel:988"
    # Text from a tool is never markup, and only http(s) links are made.
    assert cards.nth(1).locator("h4").text_content() == "<b>Not markup</b>"
    assert cards.nth(1).locator("a").count() == 0


def test_on_a_phone_the_support_lines_show_where_the_person_is_looking(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    # They sat in the side column: on a phone, below the end buttons, off screen mid-call.
    page.set_viewport_size({"width": 390, "height": 844})
    connect(page, web_url)
    for n in range(3):
        say(page, f"Work was long again, day {n}.")
        closed_turns(page, n + 1)
    say(page, "Sometimes I want to die.")
    closed_turns(page, 4)
    page.wait_for_selector("#crisis-cards .card")
    order = page.evaluate(
        """() => ['transcript', 'crisis', 'type-form'].map(id => document.getElementById(id))
            .map(node => node.getBoundingClientRect().top)"""
    )
    assert order == sorted(order), "under the latest turn, above the typing box"
    box = page.locator("#crisis-cards .card").first.bounding_box()
    assert box["y"] >= 0, "scrolled into view"
    assert box["y"] + box["height"] <= 844, "scrolled into view"
    # Someone who scrolled up to read an earlier turn is left there when the next one comes.
    page.evaluate("() => window.scrollTo(0, 0)")
    page.evaluate(
        """() => {
            document.getElementById('type-text').value = 'Still here.';
            document.getElementById('type-form').requestSubmit();
        }"""
    )
    closed_turns(page, 5)
    assert page.evaluate("() => window.scrollY") == 0


def test_ending_shows_the_finalization_card_after_the_turns_settle(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.pending_polls = 2
    connect(page, web_url, persistent=True)
    assert page.is_hidden("#incognito-banner")
    say(page, "I had a long day.")
    closed_turns(page, 1)
    page.check('input[name="feedback"][value="positive"]')
    # A double click (or a second tab of thought) still ends the session once.
    page.dblclick("#end-keep")
    page.wait_for_selector('#finalization[data-status="in_progress"]', timeout=WAIT_MS)
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    card = page.text_content("#finalization")
    assert "We talked about a long day" in card
    assert "work stress" in card
    assert "tense → calmer" in card
    note = page.text_content("#finalization .fin-note")
    assert note == "One new thing to remember was kept for next time."
    [end] = fake.ends
    assert end["save"] is True
    assert end["feedback"] == "positive"
    assert end["turns_acknowledged"] == 1
    assert page.get_attribute("#connection-state", "data-state") == "ended"
    assert page.is_hidden("#end-options")


def test_end_without_saving_sends_save_false_and_incognito_keeps_nothing_on_the_device(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url)
    assert page.is_visible("#incognito-banner")
    assert page.is_hidden("#end-discard")
    say(page, "A private thought.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="not_kept"]', timeout=WAIT_MS)
    stored = page.evaluate("() => JSON.stringify(Object.assign({}, localStorage))")
    assert "A private thought." not in stored
    # Nor its session's token: kept in the tab alone (sessionStorage), and only until it ended.
    tab = page.evaluate("() => JSON.stringify(Object.assign({}, sessionStorage))")
    assert [s.token for s in fake.sessions.values() if s.token in stored + tab] == []
    reload(page)
    assert page.is_hidden("#history")

    page.check("#memory-persistent")
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    assert fake.ends[-1]["save"] is False
    # The card says what was kept: never "Saved" for an end without saving.
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    assert page.text_content("#finalization .fin-status") == "Ended without saving"
    note = page.text_content("#finalization .fin-note")
    assert note == "No summary and no new memories were kept."
    assert "feedback" not in fake.ends[-1]


@pytest.mark.parametrize("persistent", [False, True])
def test_incognito_turns_carry_the_lines_said_before_them_and_persistent_turns_do_not(
    web_url: str, fake: FakeGateway, page: Any, persistent: bool, problems: list[str]
) -> None:
    connect(page, web_url, persistent=persistent)
    say(page, "I had a long day.")
    closed_turns(page, 1)
    say(page, "Thanks for listening.")
    turns = closed_turns(page, 2)
    recorded = eventually(lambda: len(fake.turns) == 2 and list(fake.turns.values()))
    first, second = sorted(recorded, key=lambda body: body["started_at"])
    assert [first["user_text"], second["user_text"]] == [t["user"] for t in turns]
    if persistent:
        # The service keeps a persistent session's screening context itself.
        assert "transcript" not in first
        assert "transcript" not in second
    else:
        assert first["transcript"] == []
        assert second["transcript"] == [
            {"role": "user", "text": "I had a long day."},
            {"role": "assistant", "text": " ".join(turns[0]["assistant"])},
        ]
    assert problems == []


def test_a_refused_microphone_is_explained_in_plain_words(
    web_url: str,
    fake: FakeGateway,
    silence: Path,
    launch: Callable[..., Any],
    problems: list[str],
) -> None:
    browser = launch(fake_microphone(silence), without=["--use-fake-ui-for-media-stream"])
    page = watch_console(browser.new_page(), problems)
    open_page(page, f"{web_url}/voice")
    page.click("#connect")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    message = page.text_content("#error-message")
    code = page.text_content("#error-code")
    state = page.get_attribute("#connection-state", "data-state")
    assert "Microphone access is blocked" in message
    assert code == "microphone"
    assert state == "idle"
    assert fake.session_requests == [], "no session is started without a microphone"


@pytest.mark.parametrize("path", ["/voice", "/voice/realtime-dev"])
def test_the_setup_form_cannot_be_used_before_the_page_has_its_settings(
    web_url: str, fake: FakeGateway, page: Any, path: str
) -> None:
    """The page's load event comes before its settings (config.json) and the stored setup. A
    press of Connect before then would submit the form as a plain GET, the setup in the address
    bar; what was typed would be overwritten. So the form is served disabled until it is filled."""
    held: list[Any] = []
    page.route("**/config.json", lambda route: held.append(route))
    page.goto(f"{web_url}{path}")
    for _ in range(300):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the page never asked for its settings"
    assert page.is_disabled("#connect")
    assert page.is_disabled("#user-id")
    page.click("#connect", force=True)
    page.wait_for_timeout(300)
    assert page.url == f"{web_url}{path}"
    held[0].continue_()
    ready(page)
    assert page.input_value("#thread-id").startswith("thread-")
    assert page.is_enabled("#connect")
    assert page.is_enabled("#user-id")
    assert page.url == f"{web_url}{path}"
    assert fake.session_requests == []


def test_setup_is_kept_in_local_storage_and_new_conversation_starts_afresh(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    open_page(page, f"{web_url}/voice")
    first = page.input_value("#thread-id")
    assert first.startswith("thread-")
    page.fill("#user-id", "user-7")
    page.check("#memory-persistent")
    page.select_option("#assistant-voice", "marin")
    reload(page)
    assert page.input_value("#thread-id") == first
    assert page.input_value("#user-id") == "user-7"
    assert page.is_checked("#memory-persistent")
    assert page.input_value("#assistant-voice") == "marin"
    assert page.is_hidden("#incognito-banner")
    page.click("#new-thread")
    assert page.input_value("#thread-id") != first
    reload(page)
    second = page.input_value("#thread-id")
    assert second.startswith("thread-")
    assert second != first
    # The session is opened with what the form says: the thread, user id, mode and voice.
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    [opened] = fake.session_requests
    assert opened["thread_id"] == second
    assert (opened["user_id"], opened["memory_mode"]) == ("user-7", "persistent")
    assert opened["assistant_voice"] == "marin"


def test_earlier_turns_show_after_a_reload_and_erase_forgets_them(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url, persistent=True)
    say(page, "Remember that I like walks.")
    closed_turns(page, 1)
    eventually(lambda: fake.turns)
    reload(page)
    page.wait_for_selector("#history:not([hidden]) .turn", timeout=WAIT_MS)
    assert "Remember that I like walks." in page.text_content("#history-list")
    assert page.locator("#transcript .turn").count() == 0

    page.click("#erase")
    page.click("#erase-yes")
    page.wait_for_function("() => document.getElementById('erase-result').textContent !== ''")
    assert page.text_content("#erase-result") == "Erased 1 saved item."
    assert fake.erasures == [{"confirm": "erase everything"}]
    assert page.is_hidden("#history")
    # Nothing on the page still claims something is saved.
    assert page.get_attribute("#finalization", "data-status") == "erased"
    assert page.text_content("#finalization .fin-status") == "Erased"


def test_after_an_ended_session_is_kept_erasing_replaces_its_summary(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url, persistent=True)
    say(page, "I had a long day.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    assert page.text_content("#finalization .fin-status") == "Saved and summarised"
    page.click("#erase")
    page.click("#erase-yes")
    page.wait_for_selector('#finalization[data-status="erased"]', timeout=WAIT_MS)
    assert "We talked about a long day" not in page.text_content("#finalization")


def test_the_page_is_usable_by_keyboard_alone(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    open_page(page, f"{web_url}/voice")
    page.focus("#thread-id")
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id"))
        if reached[-1] == "connect":
            break
    assert "memory-incognito" in reached
    assert "assistant-voice" in reached
    focused = "() => document.activeElement.id"
    # The setup is disabled while connecting: the focus goes on, never back to the page itself.
    fake.session_failure = (503, "service_unavailable", "Memory is resting; try again soon.")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    assert page.evaluate(focused) == "error"
    fake.session_failure = None
    page.focus("#connect")
    page.keyboard.press("Enter")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    assert page.evaluate(focused) == "conversation"
    page.focus("#type-text")
    page.keyboard.type("Hello there")
    page.keyboard.press("Enter")
    closed_turns(page, 1)
    page.focus("#end-keep")
    page.keyboard.press("Enter")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    assert page.evaluate(focused) == "connect"
    assert page.get_attribute("#transcript", "aria-live") == "polite"


def test_phone_size_dark_mode_and_reduced_motion(
    web_url: str, chromium: Any, fake: FakeGateway, scenario: Callable[..., None]
) -> None:
    context = chromium.new_context(
        viewport={"width": 375, "height": 740},
        color_scheme="dark",
        reduced_motion="reduce",
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = context.new_page()
        open_page(page, f"{web_url}/voice")
        fits = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        page.click("#connect")
        animation = page.evaluate(
            "() => getComputedStyle(document.getElementById('connection-state'), '::before').animationName"
        )
        page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
        typing, send = (
            page.locator(selector).bounding_box()
            for selector in ("#type-text", "#type-form button[type=submit]")
        )
    finally:
        context.close()
    assert fits
    # The message box keeps the row: Send once grew to half of it on a phone.
    assert typing["width"] > 2 * send["width"]
    assert abs(typing["y"] - send["y"]) < typing["height"], "on one row"
    assert background == "rgb(23, 26, 28)"
    assert animation == "none"


def test_no_secret_reaches_the_page_or_its_assets(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    connect(page, web_url, path="/voice/realtime-dev")
    say(page, "hello")
    page.wait_for_selector("#events .event")
    [secret] = fake.client_secrets
    [session] = fake.sessions.values()
    html = page.content()
    assert secret not in html
    assert session.token not in html
    assert "[redacted]" in page.text_content("#session-reply")


def test_the_inspector_logs_filters_and_exports_every_event(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None], problems: list[str]
) -> None:
    connect(page, web_url, persistent=True, path="/voice/realtime-dev")
    # Connected, Connect is disabled: it was enabled again once the connecting was done.
    assert page.is_disabled("#connect")
    say(page, "Is memory on?")
    closed_turns(page, 1)
    page.wait_for_selector("#tool-calls .tool-call[data-status='done']")
    assert "show_memory_status" in page.text_content("#tool-calls")
    marks = page.eval_on_selector_all("#latency [data-mark]", "n => n.map(e => e.dataset.mark)")
    assert {"session_minted_ms", "connected_ms", "first_audio_ms", "tool_round_trips_ms"} <= set(
        marks
    )
    assert page.text_content('#latency [data-mark="tool_round_trips_ms"] dd') != "none"
    # Each tool call with its request, its output and its round trip.
    tool = page.locator("#tool-calls .tool-call[data-status='done']")
    assert re.search(r"round trip \d+(\.\d)? m?s", tool.locator(".tool-time").text_content())
    request, output = tool.locator("details pre").all_text_contents()
    assert json.loads(request)["call_id"] == fake.tool_requests[0]["call_id"]
    [reply] = fake.tool_replies.values()
    assert json.loads(output) == reply.output
    directions = set(
        page.eval_on_selector_all("#events .event", "n => n.map(e => e.dataset.direction)")
    )
    assert directions == {"in", "out"}

    page.select_option("#filter-direction", "out")
    out_types = set(page.eval_on_selector_all("#events .event", "n => n.map(e => e.dataset.type)"))
    assert "response.create" in out_types
    assert "session.created" not in out_types
    page.select_option("#filter-direction", "")
    page.fill("#filter-type", "function_call_arguments")
    types = set(page.eval_on_selector_all("#events .event", "n => n.map(e => e.dataset.type)"))
    assert types == {
        "response.function_call_arguments.done",
        "response.function_call_arguments.delta",
    } or types == {"response.function_call_arguments.done"}

    page.click("#end-keep")
    page.wait_for_function(
        "() => document.getElementById('finalization').textContent.includes('completed')",
        timeout=WAIT_MS,
    )
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert {e["direction"] for e in exported["events"]} == {"in", "out"}
    assert any(g["call"] == "end" for g in exported["gateway"])
    assert exported["latency"]["session_minted_ms"] >= 0
    text = json.dumps(exported)
    assert fake.client_secrets[0] not in text
    assert all(s.token not in text for s in fake.sessions.values())
    assert problems == []


PHONE = {"width": 390, "height": 844}


def test_screenshots_of_both_pages_at_desktop_and_phone_size(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None], artifacts: Path
) -> None:
    """Saved to test-artifacts/web/ for a person to look at; the test checks they were taken."""
    fake.pending_polls = 1
    connect(page, web_url, persistent=True)
    say(page, "Sometimes I want to die.")
    closed_turns(page, 1)
    say(page, "Is memory on?")
    closed_turns(page, 2)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=WAIT_MS)
    taken = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for size, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            path = artifacts / f"voice-{size}-{scheme}.png"
            page.screenshot(path=str(path), full_page=True)
            taken.append(path)

    page.emulate_media(color_scheme="light")
    connect(page, web_url, path="/voice/realtime-dev")
    say(page, "Is memory on?")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    for size, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        path = artifacts / f"realtime-dev-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
    assert all(path.stat().st_size > 10_000 for path in taken)


def test_a_dropped_connection_continues_in_a_new_session_without_the_person_doing_anything(
    web_url: str,
    fake: FakeGateway,
    page: Any,
    emulator: RunningEmulator,
    scenario: Callable[..., None],
    product_scenario: str,
) -> None:
    scenario(product_scenario + "\nfaults: {drop_connection_after_seconds: 20}\n")
    connect(page, web_url, persistent=True)
    seen = record_states(page)
    scenario(product_scenario)  # for the next call
    say(page, "My sister is visiting this weekend.")
    closed_turns(page, 1)
    # Reconnecting may pass in a moment: the states are recorded, not caught in passing.
    eventually(lambda: seen()[-2:] == ["reconnecting", "connected"], timeout=60)
    say(page, "I feel a bit stressed about it.")
    closed_turns(page, 2)
    assert len(fake.session_requests) == 2
    assert (
        len(
            {
                session_id
                for session_id, _ in eventually(lambda: len(fake.turns) == 2 and fake.turns)
            }
        )
        == 2
    )
    # The dropped session was closed as continued; ending without saving is the one decision,
    # and it is the last end.
    first, second = list(fake.sessions)
    eventually(lambda: [e["session_id"] for e in fake.ends] == [first])
    assert fake.ends[0]["continued"] is True
    assert "save" not in fake.ends[0]
    page.click("#end-discard")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=WAIT_MS)
    assert [(e["session_id"], e.get("continued"), e.get("save")) for e in fake.ends] == [
        (first, True, None),
        (second, None, False),
    ]


def test_opening_a_second_tab_leaves_the_first_tabs_session_alone(
    web_url: str, fake: FakeGateway, context: Any, scenario: Callable[..., None]
) -> None:
    first = context.new_page()
    connect(first, web_url, persistent=True)
    second = context.new_page()
    open_page(second, f"{web_url}/voice")
    second.wait_for_load_state("networkidle")
    say(first, "Still here.")
    closed_turns(first, 1)
    assert fake.ends == []
    assert first.get_attribute("#connection-state", "data-state") == "connected"


def test_a_refused_session_is_explained_and_the_microphone_released(
    web_url: str, fake: FakeGateway, page: Any
) -> None:
    fake.session_failure = (503, "service_unavailable", "Memory is resting; try again soon.")
    open_page(page, f"{web_url}/voice")
    page.click("#connect")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    assert page.text_content("#error-message") == "Memory is resting; try again soon."
    assert page.text_content("#error-code") == "service_unavailable"
    assert page.get_attribute("#connection-state", "data-state") == "idle"
    assert page.is_enabled("#connect")


def test_earlier_turns_page_back_in_time(
    web_url: str, fake: FakeGateway, page: Any, scenario: Callable[..., None]
) -> None:
    fake.history_page = 2
    connect(page, web_url, persistent=True)
    for n, text in enumerate(["First thing.", "Second thing.", "Third thing."], start=1):
        say(page, text)
        closed_turns(page, n)
    eventually(lambda: len(fake.turns) == 3)
    reload(page)
    page.wait_for_selector("#history:not([hidden]) .turn", timeout=WAIT_MS)

    def shown() -> list[str]:
        said: list[str] = page.eval_on_selector_all(
            "#history-list .user .said", "n => n.map(e => e.textContent)"
        )
        return said

    assert shown() == ["Second thing.", "Third thing."]
    page.click("#history-more")
    page.wait_for_function("() => document.querySelectorAll('#history-list .turn').length === 3")
    assert shown() == ["First thing.", "Second thing.", "Third thing."]
    assert page.is_hidden("#history-more")
    assert len(set(fake.traceparents)) == len(fake.traceparents), "a fresh trace per call"


def test_a_muted_microphone_is_not_heard_and_a_typed_reply_is_not_cut(
    web_url: str,
    fake: FakeGateway,
    launch: Callable[..., Any],
    emulator: RunningEmulator,
    problems: list[str],
) -> None:
    # Chromium's own fake microphone beeps without pause, which the emulator hears as speech,
    # as Realtime would hear a noisy room: a reply to a typed message was cut ("turn_detected")
    # before a word of it was shown. Muted, the call sends silence.
    page = watch_console(launch().new_page(), problems)
    open_page(page, f"{web_url}/voice")
    page.click("#mute")  # before connecting, as someone who would rather type
    assert page.inner_text("#mute") == "Unmute microphone"
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=WAIT_MS)
    assert "microphone muted" in page.inner_text("#connection-state")
    call_id = latest_call(emulator)

    say(page, "I've been feeling anxious about work lately, my manager keeps moving deadlines.")
    closed_turns(page, 1)
    page.wait_for_timeout(2500)  # the beep would have been heard by now
    heard = server_events(emulator, call_id)
    assert "input_audio_buffer.speech_started" not in heard
    assert "response.done" in heard
    turns = closed_turns(page, 1)
    assert [t["user"] for t in turns] == [
        "I've been feeling anxious about work lately, my manager keeps moving deadlines."
    ]
    assert turns[0]["assistant"], "the reply to the typed message was shown"
    assert page.eval_on_selector("#mic-level", "m => m.value") == 0

    # Unmuted, the same microphone is heard: what the test looks for is there to be seen.
    page.click("#mute")
    assert page.get_attribute("#mute", "data-muted") is None
    assert page.inner_text("#mute") == "Mute microphone"
    eventually(
        lambda: "input_audio_buffer.speech_started" in server_events(emulator, call_id),
        timeout=15,
    )
