"""The web client end to end: real Chromium on /voice, every service a real process, the
emulator as Realtime (scenarios set per test), on private NATS, Redis and Postgres (so that
Postgres itself can be restarted).

Covers the manual check list of the behaviour reference, automated, and what the web issue
asks: spoken turns shown and stored as shown, tool calls and their outputs, a /turn that failed
delivered after a reload exactly once, session_expired carried over, a tool timeout, and the
finalization card. Skips with the reason without Chromium, Playwright, espeak-ng or sox.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from opencouch.testing import database
from opencouch.testing.browser import (
    fake_microphone,
    launch_chromium,
    running_playwright,
    speech_tools_missing,
    spoken_wav,
    uncaught_errors,
    watch_console,
)
from opencouch.testing.infra import PrivateInfra
from opencouch.testing.processes import Stack, emulator_scenario, running_stack
from opencouch.testing.servers import ServerUnavailableError
from opencouch.testing.voice_client import VoiceClient
from opencouch.voice_gateway.testing import StandInOwner
from opencouch.web.testing import (
    PAGE_WAIT_MS,
    closed_turns,
    connect,
    eventually,
    open_page,
    outbox_waiting,
    record_states,
    reload,
    say,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def infra() -> Iterator[PrivateInfra]:
    try:
        with PrivateInfra() as running:
            yield running
    except ServerUnavailableError as error:
        pytest.skip(f"private NATS, Redis and Postgres unavailable: {error}")


@pytest.fixture(scope="module")
def stack(infra: PrivateInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        nats_url=infra.nats.url,
        redis_url=infra.redis.url,
        database_url=infra.postgres.url,
        log_dir=tmp_path_factory.mktemp("web-stack-logs"),
        with_web=True,
    ) as running:
        yield running
    unclean = {name: code for name, code in running.exit_codes.items() if code != 0}
    assert not unclean, f"services did not stop cleanly on SIGTERM: {unclean}"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if speech_tools_missing():
        pytest.skip(speech_tools_missing() or "")
    return tmp_path_factory.mktemp("web-audio")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    yield from running_playwright()


@pytest.fixture(scope="module")
def chromium(playwright: Any, audio_dir: Path) -> Iterator[Any]:
    """Chromium whose microphone is silent, for typed conversations."""
    browser = launch_chromium(playwright, fake_microphone(spoken_wav(audio_dir / "quiet.wav", 1.0)))
    yield browser
    browser.close()


@pytest.fixture
def problems() -> Iterator[list[str]]:
    """Console errors and warnings (CSP violations among them) and uncaught page errors; a test
    whose page threw an error nothing caught fails, whatever it asserted."""
    found: list[str] = []
    yield found
    assert uncaught_errors(found) == []


@pytest.fixture
def page(chromium: Any, problems: list[str]) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield watch_console(context.new_page(), problems)
    context.close()


@pytest.fixture
def scenario(stack: Stack) -> Iterator[Callable[[str], None]]:
    """Set the scenario (YAML) new calls follow; the product's own is put back afterwards."""

    def put(text: str) -> None:
        reply = httpx.put(f"{stack.emulator_url}/_emulator/scenario", content=text, timeout=10)
        assert reply.status_code == 200, reply.text

    product = emulator_scenario().read_text()
    put(product)
    yield put
    put(product)


def rows(stack: Stack, query: str, *params: object) -> list[tuple[Any, ...]]:
    return database.rows(stack.database_url, query, *params)


def stored_turns(stack: Stack, thread_id: str) -> list[tuple[Any, ...]]:
    return rows(
        stack,
        "SELECT client_turn_id, user_text, assistant_text, session_id FROM memory.turns"
        " WHERE thread_id = %s ORDER BY id",
        thread_id,
    )


def newest_call(stack: Stack) -> str:
    body = httpx.get(f"{stack.emulator_url}/_emulator/calls", timeout=10).json()
    found = body["calls"] if isinstance(body, dict) else body
    call_id: str = max(found, key=lambda c: c.get("started_at", 0))["call_id"]
    return call_id


def client_events(stack: Stack, call_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{stack.emulator_url}/v1/realtime/calls/{call_id}/log",
        headers={"Authorization": "Bearer sk-emulator-local"},
        timeout=10,
    )
    reply.raise_for_status()
    return [e["event"] for e in reply.json()["log"] if e["direction"] == "in"]


def tool_rows(page: Any) -> list[tuple[str, str]]:
    found: list[list[str]] = page.eval_on_selector_all(
        "#tools-body tr",
        "rows => rows.map(r => [r.querySelector('.tool-name').textContent, r.dataset.status])",
    )
    return [(name, status) for name, status in found]


def wait_for_tool(page: Any, name: str, status: str) -> None:
    # By the name as read (get_by_text): the cell breaks it into text nodes at its <wbr>s,
    # which a strict text="..." selector does not join.
    page.locator(f'#tools-body tr[data-status="{status}"] .tool-name').get_by_text(
        name, exact=True
    ).wait_for(timeout=PAGE_WAIT_MS)


# -- what the web issue asks -------------------------------------------------------------------


def test_two_spoken_utterances_are_shown_and_stored_as_shown(
    stack: Stack,
    playwright: Any,
    audio_dir: Path,
    scenario: Callable[[str], None],
    problems: list[str],
) -> None:
    scenario(
        json.dumps(
            {
                "turns": [
                    {"user": "I had a long day at work.", "say": "That sounds tiring."},
                    {"user": "My manager moved a deadline.", "say": "That is a lot to absorb."},
                ]
            }
        )
    )
    wav = spoken_wav(
        audio_dir / "two.wav",
        4.0,
        "I had a long day at work.",
        7.0,
        "My manager moved a deadline.",
        2.0,
    )
    browser = launch_chromium(playwright, fake_microphone(wav))
    try:
        page = watch_console(browser.new_page(), problems)
        connect(page, stack.web_url, persistent=True)
        thread_id = page.input_value("#thread-id")
        shown = closed_turns(page, 2)
    finally:
        browser.close()
    assert [t["user"] for t in shown] == [
        "I had a long day at work.",
        "My manager moved a deadline.",
    ]
    assert [t["assistant"] for t in shown] == [
        ["That sounds tiring."],
        ["That is a lot to absorb."],
    ]
    stored = eventually(
        lambda: len(stored_turns(stack, thread_id)) == 2 and stored_turns(stack, thread_id)
    )
    assert [(t[0], t[1], t[2]) for t in stored] == [
        (t["id"], t["user"], " ".join(t["assistant"])) for t in shown
    ]
    assert problems == []


def test_a_tool_call_shows_in_the_panel_and_its_output_reaches_the_model(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    call_id = newest_call(stack)
    say(page, "Is memory on?")
    [turn] = closed_turns(page, 1)
    assert tool_rows(page) == [("show_memory_status", "done")]
    # The offline companion answers with what the memory service said: off, in incognito.
    assert " ".join(turn["assistant"]).startswith("Memory is off: this is an incognito")
    sent = client_events(stack, call_id)
    outputs = [
        e
        for e in sent
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 1
    output = json.loads(outputs[0]["item"]["output"])
    assert output["memory_enabled"] is False
    assert [e["type"] for e in sent[sent.index(outputs[0]) + 1 :]].count("response.create") == 1


def test_a_turn_whose_turn_call_failed_is_delivered_after_a_reload_exactly_once(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    page.route("**/api/voice/realtime/turn", lambda route: route.abort("connectionrefused"))
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    say(page, "Please keep this one.")
    [turn] = closed_turns(page, 1)
    outbox_waiting(page)
    assert stored_turns(stack, thread_id) == []

    page.unroute("**/api/voice/realtime/turn")
    reload(page)
    page.wait_for_function(
        "() => localStorage.getItem('opencouch.outbox.v1') === null", timeout=PAGE_WAIT_MS
    )
    stored = eventually(lambda: stored_turns(stack, thread_id))
    assert [(t[0], t[1]) for t in stored] == [(turn["id"], "Please keep this one.")]
    # The session the reload left open is ended (and finalized) once its turn is in.
    eventually(
        lambda: rows(
            stack, "SELECT status FROM finalizer.finalizations WHERE thread_id = %s", thread_id
        )
    )
    assert len(stored_turns(stack, thread_id)) == 1


def test_a_turn_stored_whose_reply_was_lost_is_stored_once_after_a_reload(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    """The gateway stores the turn but its answer never reaches the page: the page retries it
    with the same client_turn_id, also after a reload, and it is still stored once."""

    def reply_lost(route: Any) -> None:
        route.fetch()  # the gateway gets the turn and stores it
        route.abort("connectionreset")  # the page never hears back

    page.route("**/api/voice/realtime/turn", reply_lost)
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    say(page, "Please keep this one too.")
    [turn] = closed_turns(page, 1)
    outbox_waiting(page)
    stored = eventually(lambda: stored_turns(stack, thread_id))
    assert [(t[0], t[1]) for t in stored] == [(turn["id"], "Please keep this one too.")]

    # The outbox keeps retrying: one retry may be inside reply_lost still (fetched, not yet
    # aborted). Removing the route under it would continue that request and fail the abort.
    page.unroute_all(behavior="wait")
    reload(page)
    page.wait_for_function(
        "() => localStorage.getItem('opencouch.outbox.v1') === null", timeout=PAGE_WAIT_MS
    )
    eventually(
        lambda: rows(
            stack, "SELECT status FROM finalizer.finalizations WHERE thread_id = %s", thread_id
        )
    )
    assert [(t[0], t[1]) for t in stored_turns(stack, thread_id)] == [
        (turn["id"], "Please keep this one too.")
    ]


def test_session_expired_continues_the_conversation(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    product = emulator_scenario().read_text()
    scenario(product + "\nfaults: {max_session_seconds: 20}\n")
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    seen = record_states(page)
    first_call = newest_call(stack)
    scenario(product)  # a call takes its scenario when it starts: the next one does not expire
    say(page, "My sister is visiting this weekend.")
    closed_turns(page, 1)
    # Reconnecting may pass in a moment: the states are recorded, not caught in passing.
    eventually(lambda: seen()[-2:] == ["reconnecting", "connected"], timeout=60)
    second_call = eventually(lambda: newest_call(stack) != first_call and newest_call(stack))
    say(page, "I feel a bit stressed about it.")
    shown = closed_turns(page, 2)
    context = [
        e["item"]["content"][0]["text"]
        for e in client_events(stack, second_call)
        if e["type"] == "conversation.item.create" and e["item"].get("role") == "system"
    ]
    assert len(context) == 1
    assert "User: My sister is visiting this weekend." in context[0]
    stored = eventually(
        lambda: len(stored_turns(stack, thread_id)) == 2 and stored_turns(stack, thread_id)
    )
    assert [t[1] for t in stored] == [t["user"] for t in shown]
    assert len({t[3] for t in stored}) == 2, "two sessions, one thread"


def test_a_tool_timeout_shows_as_failed(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    # The gateway offers only the tools it has heard an owner announce, and keeps what it heard
    # through an outage: let it hear them once, or this test depends on the ones before it.
    started = httpx.post(
        f"{stack.gateway_url}/api/voice/realtime/session",
        json={"thread_id": f"thread-{uuid.uuid4().hex}", "memory_mode": "incognito"},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    offered = [tool["name"] for tool in started.json()["session"]["tools"]]
    assert "load_guided_exercise_skill" in offered
    ended = httpx.post(
        f"{stack.gateway_url}/api/voice/realtime/end",
        json={},
        headers={"Authorization": f"Bearer {started.json()['token']}"},
        timeout=30,
    )
    assert ended.status_code == 200, ended.text
    tools = stack.services["tools"]
    assert tools.stop() == 0
    try:
        # An owner that runs (it answers the gateway's check that one does) but hangs.
        with StandInOwner(stack.nats_url, "load_guided_exercise_skill", seconds=None):
            connect(page, stack.web_url)
            say(page, "Can we do a breathing exercise?")
            wait_for_tool(page, "load_guided_exercise_skill", "failed")
            [turn] = closed_turns(page, 1)
    finally:
        stack.services["tools"] = tools.restart()
        stack.services["tools"].wait_healthy()
    assert page.text_content('#tools-body tr[data-status="failed"] .tool-status') == "Failed"
    # The offline companion owns up to it, instead of the line that assumes the exercise loaded.
    said = " ".join(turn["assistant"])
    assert "couldn't do that just now" in said
    assert "begin" not in said.lower()


def test_ending_shows_the_finalization_card(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    say(page, "I have been feeling stressed about work.")
    closed_turns(page, 1)
    say(page, "Thanks, that helps.")
    closed_turns(page, 2)
    page.check('input[name="feedback"][value="positive"]')
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=60_000)
    # The finalizer's summary when it wrote one, else what it said about the session (two
    # turns may be too few to summarise); the heading says which.
    summarised = page.locator("#finalization .fin-summary").count() == 1
    assert page.text_content("#finalization .fin-status") == (
        "Saved and summarised" if summarised else "Saved"
    )
    assert page.text_content("#finalization .fin-summary, #finalization .fin-note")
    assert rows(
        stack,
        "SELECT status, turn_count FROM finalizer.finalizations WHERE thread_id = %s",
        thread_id,
    ) == [("completed", 2)]
    assert rows(
        stack,
        "SELECT f.label FROM finalizer.session_feedback f JOIN finalizer.finalizations z"
        " USING (session_id) WHERE z.thread_id = %s",
        thread_id,
    ) == [("positive",)]


# -- the manual check list of the behaviour reference, automated --------------------------------


def test_check_1_an_incognito_turn_claims_nothing_will_be_remembered(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    open_page(page, f"{stack.web_url}/voice")
    assert page.is_visible("#incognito-banner")
    with page.expect_response("**/api/voice/realtime/session") as created:
        page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=PAGE_WAIT_MS)
    secret = created.value.json()["client_secret"]["value"]
    minted = httpx.get(f"{stack.emulator_url}/_emulator/client_secrets/{secret}", timeout=10).json()
    # The model is told memory is off and never to claim otherwise, and given no memory.
    instructions = minted["session"]["instructions"]
    assert "Memory is off in this conversation" in instructions
    assert "Private memory context" not in instructions
    say(page, "Please remember that I like tea.")
    [turn] = closed_turns(page, 1)
    assert "remember" not in " ".join(turn["assistant"]).lower()


def test_check_2_incognito_keeps_nothing_after_disconnect_and_reload(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    thread_id = page.input_value("#thread-id")
    say(page, "Something only for now.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#finalization[data-status="not_kept"]', timeout=PAGE_WAIT_MS)
    reload(page)
    assert page.is_hidden("#history")
    assert "Something only for now." not in page.evaluate(
        "() => JSON.stringify(Object.assign({}, localStorage))"
    )
    assert stored_turns(stack, thread_id) == []
    assert (
        rows(stack, "SELECT 1 FROM finalizer.finalizations WHERE thread_id = %s", thread_id) == []
    )


def test_check_3_asking_whether_memory_is_on_runs_show_memory_status(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    say(page, "Is memory on?")
    closed_turns(page, 1)
    assert tool_rows(page) == [("show_memory_status", "done")]


def test_check_4_persistent_history_survives_a_restart_of_the_backend_and_postgres(
    stack: Stack, infra: PrivateInfra, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    say(page, "I like long walks by the river.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=PAGE_WAIT_MS)
    eventually(lambda: stored_turns(stack, thread_id))

    infra.postgres.restart()
    for name in ("memory", "finalizer", "voice-gateway"):
        service = stack.services[name]
        assert service.stop() == 0
        stack.services[name] = service.restart()
        stack.services[name].wait_healthy()
    # The tools service was not restarted: its first query after the restart still reaches
    # its library (a pooled connection broken by the restart is replaced, not used).
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        client = VoiceClient(http)
        assert client.start(f"thread-after-postgres-{uuid.uuid4().hex[:8]}").status_code == 200
        looked = client.tool("answer_grounded_lookup", {"query": "how can I sleep better"})
    assert looked.json()["output"]["status"] == "answered", looked.json()

    assert [t[1] for t in stored_turns(stack, thread_id)] == ["I like long walks by the river."]
    reload(page)
    page.wait_for_selector("#history:not([hidden]) .turn", timeout=PAGE_WAIT_MS)
    assert "I like long walks by the river." in page.text_content("#history-list")
    # And the conversation carries on in a new session on the same thread.
    page.click("#connect")
    page.wait_for_selector('#connection-state[data-state="connected"]', timeout=PAGE_WAIT_MS)
    say(page, "I walked there again today.")
    closed_turns(page, 1)
    eventually(lambda: len(stored_turns(stack, thread_id)) == 2)


def test_check_5_a_question_about_official_guidance_runs_the_grounded_lookup_first(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    call_id = newest_call(stack)
    say(page, "What is the current official guidance on sleep?")
    [turn] = closed_turns(page, 1)
    assert tool_rows(page) == [("answer_grounded_lookup", "done")]
    # The offline companion says the verified answer and where it comes from, nothing else.
    output = json.loads(
        next(
            e["item"]["output"]
            for e in client_events(stack, call_id)
            if e["type"] == "conversation.item.create"
            and e["item"]["type"] == "function_call_output"
        )
    )
    assert output["status"] == "answered"
    # Spoken: the best passage alone, and who says it.
    best = output["citations"][0]
    assert output["answer"].startswith(best["text"])
    assert " ".join(turn["assistant"]) == (
        f"{best['text']} That's general information from {best['publisher']}, not a diagnosis."
    )


def test_check_6_asking_for_a_hotline_runs_the_crisis_lookup_before_any_resource_is_named(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    call_id = newest_call(stack)
    say(page, "Can you give me a hotline? I live in Toronto.")
    closed_turns(page, 1)
    assert tool_rows(page) == [("lookup_crisis_resources", "done")]
    cards = page.eval_on_selector_all("#crisis-cards .card h4", "n => n.map(e => e.textContent)")
    assert cards
    assert all("988" in name or "9-8-8" in name for name in cards[:1])
    # The model had nothing to say before the lookup's output reached it.
    sent = client_events(stack, call_id)
    first_output = next(
        i
        for i, e in enumerate(sent)
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    )
    assert json.loads(sent[first_output]["item"]["output"])["status"] == "found"


def test_asked_where_they_are_the_answer_brings_the_lines_for_that_place(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    say(page, "I want to end my life.")
    [first] = closed_turns(page, 1)
    assert "which country or city" in " ".join(first["assistant"])
    say(page, "I'm in Toronto.")
    second = closed_turns(page, 2)[-1]
    # The real lookup resolved the place from the person's words (Canada's lines serve
    # Toronto), and the companion names it.
    assert "The lines on your screen are the ones I can offer for Canada." in " ".join(
        second["assistant"]
    )
    assert [status for name, status in tool_rows(page)] == ["done", "done"]
    cards = page.eval_on_selector_all("#crisis-cards .card h4", "n => n.map(e => e.textContent)")
    assert cards


def test_check_7_an_exercise_request_runs_the_exercise_tools(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url)
    say(page, "Can we do a breathing exercise together?")
    [turn] = closed_turns(page, 1)
    names = [name for name, _ in tool_rows(page)]
    assert names
    assert all("exercise" in name for name in names)
    assert tool_rows(page)[0][1] == "done"
    # It leads the first step the tools service returned, in the exercise's own words.
    exercise = tomllib.loads(
        (
            resources.files("opencouch.tools") / "data/exercises/grounding_box_breathing.toml"
        ).read_text()
    )
    assert " ".join(turn["assistant"]) == f"Let's begin. {exercise['steps'][0]['instruction']}"


def test_an_exercise_is_led_to_its_end_one_step_at_a_time(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    # Each reply to a step is recorded as progress on that step (the tools service checks the
    # ids), and the companion reads out the step the tools service leads next.
    steps = [
        step["instruction"]
        for step in tomllib.loads(
            (
                resources.files("opencouch.tools") / "data/exercises/grounding_box_breathing.toml"
            ).read_text()
        )["steps"]
    ]
    connect(page, stack.web_url)
    say(page, "Can we do a breathing exercise together?")
    assert " ".join(closed_turns(page, 1)[-1]["assistant"]) == f"Let's begin. {steps[0]}"
    for shown, instruction in enumerate(steps[1:], start=2):
        say(page, "Okay, done.")
        assert " ".join(closed_turns(page, shown)[-1]["assistant"]) == instruction
    say(page, "Done.")
    assert " ".join(closed_turns(page, len(steps) + 1)[-1]["assistant"]).startswith(
        "That was the last step."
    )
    progress = [status for name, status in tool_rows(page) if "progress" in name]
    assert progress == ["done"] * len(steps)


def test_check_8_disconnecting_shows_the_finalization_result(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    say(page, "Today was better than yesterday.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector(
        '#finalization[data-status="completed"], #finalization[data-status="failed"]',
        timeout=60_000,
    )
    assert page.text_content("#finalization .fin-status") in (
        "Saved and summarised",
        "Saved",
        "Could not be summarised",
    )


def test_ending_without_saving_says_so(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    say(page, "Just thinking out loud today.")
    closed_turns(page, 1)
    page.click("#end-discard")
    page.wait_for_selector('#finalization[data-status="completed"]', timeout=60_000)
    assert page.text_content("#finalization .fin-status") == "Ended without saving"
    assert page.locator("#finalization .fin-summary").count() == 0
    assert rows(
        stack, "SELECT summary FROM finalizer.finalizations WHERE thread_id = %s", thread_id
    ) == [(None,)]


def test_asked_to_remember_then_forget_a_fact_the_companion_does_both_through_memory(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")

    def last_reply(said: str, shown: int) -> str:
        say(page, said)
        return " ".join(closed_turns(page, shown)[-1]["assistant"])

    asked = last_reply("Can you remember that my sister's name is Ana?", 1)
    assert asked.startswith("I'll keep that in mind for this conversation.")
    # The memory service holds the fact for this conversation once it has the turn.
    [(_, _, _, session_id)] = eventually(lambda: stored_turns(stack, thread_id))
    held = redis.Redis.from_url(stack.redis_url)
    try:
        eventually(lambda: held.hlen(f"memory:v1:candidates:{session_id}") == 1)
    finally:
        held.close()
    kept = last_reply("What do you remember about me?", 2)
    assert kept == "From this conversation, saved when it ends: My sister is called Ana."
    staged = last_reply("Please forget that my sister is called Ana.", 3)
    assert staged.startswith('Just to be sure: should I delete "My sister is called Ana."?')
    assert last_reply("Yes.", 4) == "Done. It's deleted, and I won't use it again."
    assert last_reply("What do you remember about me?", 5).startswith(
        "Nothing is kept about you yet."
    )
    names = [name for name, status in tool_rows(page) if status == "done"]
    assert names == [
        "show_saved_memory",
        "prepare_memory_deletion_by_query",
        "confirm_memory_deletion",
        "show_saved_memory",
    ]


def test_erasing_forgets_the_persistent_conversation(
    stack: Stack, page: Any, scenario: Callable[[str], None]
) -> None:
    connect(page, stack.web_url, persistent=True)
    thread_id = page.input_value("#thread-id")
    assert page.is_disabled("#erase"), "not while a conversation is live"
    say(page, "I like long walks by the river.")
    closed_turns(page, 1)
    page.click("#end-keep")
    page.wait_for_selector('#connection-state[data-state="ended"]', timeout=PAGE_WAIT_MS)
    eventually(lambda: stored_turns(stack, thread_id))
    reload(page)
    page.wait_for_selector("#history:not([hidden]) .turn", timeout=PAGE_WAIT_MS)

    page.click("#erase")
    page.click("#erase-yes")
    page.wait_for_function(
        "() => document.getElementById('erase-result').textContent !== ''", timeout=PAGE_WAIT_MS
    )
    assert page.text_content("#erase-result").startswith("Erased ")
    assert page.is_hidden("#history")
    assert page.text_content("#finalization .fin-status") == "Erased"
    assert stored_turns(stack, thread_id) == []
