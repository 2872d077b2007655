"""Voice sessions end to end, every service a real process on real NATS, Redis, Postgres.

The ``stack`` fixture (opencouch.testing.fixtures) starts them here, or is the Docker Compose
stack that scripts/compose-e2e names in ``OPENCOUCH_E2E_*``.

/session (secret minted by the emulator through the openai SDK, token issued) -> /tools ->
/turn -> /end -> the turns and the finalization row are in Postgres exactly once each, and
every service stops cleanly on SIGTERM. Every later call carries the voice-session token.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from opencouch.testing.database import assert_no_trace, rows
from opencouch.testing.openai_spec import validate_against
from opencouch.testing.processes import Stack
from opencouch.testing.voice_client import API, VoiceClient
from opencouch.voice_gateway.testing import StandInOwner
from opencouch.voice_gateway.voice_sessions import UNENDED_KEY, redis_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture
def browser(api: httpx.Client) -> VoiceClient:
    return VoiceClient(api)


def unique(name: str) -> str:
    """Ids unique to this run: Redis and NATS outlive a test run, the database does not."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def test_a_persistent_voice_session_is_recorded_and_finalized_once(
    stack: Stack, browser: VoiceClient
) -> None:
    thread_id, user_id = unique("thread-e2e"), unique("user-e2e")

    created = browser.start(
        thread_id, user_id=user_id, memory_mode="persistent", assistant_voice="marin"
    )
    assert created.status_code == 200, created.text
    session = created.json()
    session_id = session["session_id"]
    assert session["client_secret"]["value"].startswith("ek_")
    assert session["realtime_calls_url"] == f"{stack.emulator_url}/v1/realtime/calls"
    shown = session["session"]
    assert "instructions" not in shown, "private memory context stays out of the reply"
    assert shown["audio"]["output"]["voice"] == "marin"
    assert shown["audio"]["input"]["turn_detection"]["interrupt_response"] is True
    assert all(tool["parameters"]["additionalProperties"] is False for tool in shown["tools"])
    assert {"show_saved_memory", "lookup_crisis_resources"} <= {t["name"] for t in shown["tools"]}

    minted = httpx.get(
        f"{stack.emulator_url}/_emulator/client_secrets/{session['client_secret']['value']}"
    ).json()
    validate_against("RealtimeSessionCreateRequestGA", shown)
    assert minted["safety_identifier"] == hashlib.sha256(user_id.encode()).hexdigest()
    assert minted["session"]["instructions"]
    assert minted["session"]["tools"] == shown["tools"]

    tool = browser.tool(
        "lookup_crisis_resources",
        current_user_message="I'm in Toronto and I don't want to be here anymore",
        transcript=[{"role": "user", "text": "I don't want to be here anymore"}],
    )
    assert tool.status_code == 200, tool.text
    output = tool.json()["output"]
    assert tool.json()["ok"] is True
    assert output["status"] == "found"
    assert output["location"] == "Canada"
    assert output["resources"][0]["name"] == "9-8-8 Suicide Crisis Helpline"

    turns: list[dict[str, object]] = [
        {
            "client_turn_id": "turn-1",
            "user_text": "I'm in Toronto and I don't want to be here anymore",
            "assistant_text": "I'm really glad you told me. You can call or text 9-8-8.",
            "tool_calls": [
                {"tool_name": "lookup_crisis_resources", "status": "completed", "output": output}
            ],
        },
        {
            "client_turn_id": "turn-2",
            "user_text": "Okay. I think I can call them.",
            "assistant_text": "That sounds like a brave step.",
        },
        {
            "client_turn_id": "turn-3",
            "user_text": "Thank you for staying with me.",
            "assistant_text": "I'm here with you.",
        },
    ]
    counts = []
    for body in turns:
        reply = browser.turn(**body)  # type: ignore[arg-type]
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is True
        counts.append(reply.json()["message_count"])
        # The browser's retry of an acknowledged turn gets the same answer, stored once.
        assert browser.turn(**body).json() == reply.json()  # type: ignore[arg-type]
    assert counts == [2, 4, 6]

    reused = browser.turn("turn-1", "something else", "entirely")
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "turn_conflict"

    ended = browser.end(feedback="positive")
    assert ended.status_code == 200, ended.text
    result = ended.json()
    assert result["finalized"] is True
    assert result["status"] == "completed"
    assert result["turn_count"] == 3

    # Ending again (a retry, or a second tab) reports the same finalization.
    again = browser.end()
    assert again.status_code == 200
    assert again.json()["finalized_at"] == result["finalized_at"]
    assert browser.finalization().json()["finalized_at"] == result["finalized_at"]

    stored = rows(
        stack.database_url,
        "SELECT client_turn_id, route, response_style FROM memory.turns WHERE session_id = %s"
        " ORDER BY client_turn_id",
        session_id,
    )
    assert stored == [
        ("turn-1", "crisis", "crisis_response"),
        ("turn-2", "therapeutic", "voice"),
        ("turn-3", "therapeutic", "voice"),
    ]
    finalizations = rows(
        stack.database_url,
        "SELECT status, turn_count FROM finalizer.finalizations WHERE session_id = %s",
        session_id,
    )
    assert finalizations == [("completed", 3)]
    feedback = rows(
        stack.database_url,
        "SELECT label, turn_count FROM finalizer.session_feedback WHERE session_id = %s",
        session_id,
    )
    assert feedback == [("positive", 3)]

    # A later session of the same thread starts from the stored message count, and may reuse a
    # client_turn_id of the earlier session.
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    next_turn = browser.turn("turn-1", "Back again.", "Welcome back.")
    assert next_turn.status_code == 200, next_turn.text
    assert next_turn.json()["message_count"] == 8


def test_a_session_nobody_ended_is_finalized_by_the_gateway(
    stack: Stack, browser: VoiceClient
) -> None:
    """A tab closed mid-conversation: no ``/end`` ever comes. Once no token could end the
    session, a gateway ends it as an ``/end`` with no body would: finalized and saved, once."""
    created = browser.start(
        unique("thread-e2e"), user_id=unique("user-e2e"), memory_mode="persistent"
    )
    assert created.status_code == 200, created.text
    for number in (1, 2):
        turn = browser.turn(f"turn-{number}", "It was a hard week at work.", "Tell me more.")
        assert turn.status_code == 200, turn.text

    # The real wait is the session's hour, the token's grace and a minute: cut short in Redis.
    client: Any = redis.Redis.from_url(stack.redis_url)
    try:
        due = {redis_key("vs", browser.session_id): time.time() - 1}
        assert client.zadd(UNENDED_KEY, due, xx=True, ch=True) == 1
    finally:
        client.close()
    deadline = time.monotonic() + 120  # the gateway sweeps every 30 s
    while (final := browser.finalization()).status_code != 200:
        assert final.status_code == 202, final.text
        assert time.monotonic() < deadline, final.text
        time.sleep(1)
    assert (final.json()["status"], final.json()["turn_count"]) == ("completed", 2)
    assert rows(
        stack.database_url,
        "SELECT status, turn_count FROM finalizer.finalizations WHERE session_id = %s",
        browser.session_id,
    ) == [("completed", 2)]
    # Closed like any end.
    late = browser.turn("turn-3", "One more thing.", "Yes?")
    assert (late.status_code, late.json()["error"]["code"]) == (409, "session_ended")


def test_incognito_keeps_nothing_and_refuses_persistent_tools(
    stack: Stack, browser: VoiceClient
) -> None:
    thread_id = unique("thread-e2e-incognito")
    created = browser.start(thread_id)
    assert created.status_code == 200, created.text
    session = created.json()
    assert session["memory_mode"] == "incognito"
    names = {tool["name"] for tool in session["session"]["tools"]}
    assert "show_saved_memory" not in names
    assert "show_memory_status" in names
    minted = httpx.get(
        f"{stack.emulator_url}/_emulator/client_secrets/{session['client_secret']['value']}"
    ).json()
    instructions = minted["session"]["instructions"]
    assert "Memory is off in this conversation" in instructions
    assert "Private memory context" not in instructions

    status = browser.tool("show_memory_status").json()["output"]
    assert status["memory_enabled"] is False
    # Incognito is a floor: a body asking for persistent is refused, never obeyed.
    raised = browser.tool("show_memory_status", memory_mode="persistent")
    assert raised.status_code == 403
    assert raised.json()["error"]["code"] == "token_mismatch"

    refused = browser.tool("show_saved_memory").json()["output"]
    assert refused["status"] == "refused"
    assert refused["error"]["code"] == "tool_not_available_in_memory_mode"

    turn = browser.turn("t1", "a secret", "kept safe")
    assert turn.json() == {"recorded": False, "thread_id": thread_id, "message_count": 0}
    # Tool state of the session (where the user said they live, an exercise under way) is kept
    # in Redis while the session runs, and dropped as soon as it ends.
    lookup = browser.tool("lookup_crisis_resources", current_user_message="I live in Ohio")
    assert lookup.json()["ok"] is True, lookup.text
    exercise = browser.tool("start_guided_exercise", {"exercise_type": "grounding_box_breathing"})
    assert exercise.json()["output"]["status"] == "ok", exercise.text
    client: Any = redis.Redis.from_url(stack.redis_url)
    try:
        pattern = f"opencouch:tools:{browser.session_id}:*"
        kept = list(client.scan_iter(pattern))
        assert len(kept) == 2
        # Never past the session's own end (an hour here, plus a minute), even if never ended.
        assert all(0 < client.ttl(key) <= 3660 for key in kept), [client.ttl(k) for k in kept]
        ended = browser.end()
        assert ended.status_code == 200
        assert ended.json()["finalized"] is False
        deadline = time.monotonic() + 10
        while left := list(client.scan_iter(pattern)):
            assert time.monotonic() < deadline, f"tool state left after the end: {left}"
            time.sleep(0.05)
    finally:
        client.close()
    assert (
        rows(stack.database_url, "SELECT 1 FROM memory.turns WHERE thread_id = %s", thread_id) == []
    )
    assert (
        rows(
            stack.database_url,
            "SELECT 1 FROM finalizer.finalizations WHERE thread_id = %s",
            thread_id,
        )
        == []
    )


def redis_value(client: Any, key: bytes) -> bytes:
    """Everything a Redis key holds, as plain bytes (DUMP may compress it)."""
    kind = client.type(key)
    if kind == b"string":
        return bytes(client.get(key) or b"")
    if kind == b"hash":
        return b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
    if kind == b"list":
        return b"\n".join(client.lrange(key, 0, -1))
    if kind in (b"set", b"zset"):
        members = client.smembers(key) if kind == b"set" else client.zrange(key, 0, -1)
        return b"\n".join(members)
    return repr(client.xrange(key) if kind == b"stream" else kind).encode()


def test_incognito_turns_are_screened_in_context_and_leave_only_crisis_log_rows(
    stack: Stack, browser: VoiceClient
) -> None:
    """A "yes" to a safety check, and a plan after earlier ideation, mean nothing alone: the
    recent lines the browser sends with each incognito turn are what the classifier needs, and
    they are kept nowhere (no Redis screening memory, no row, no log line)."""
    thread_id = unique("thread-e2e-incognito-context")
    marker = f"Quillon-{uuid.uuid4().hex[:8]}"
    assert browser.start(thread_id).status_code == 200
    session_id = browser.session_id
    exchanges = [
        (f"Everything feels pointless lately, {marker}.", "Are you thinking about suicide?"),
        ("Yes.", "Thank you for telling me. I'm here with you."),
        ("I don't want to be alive anymore.", "I'm really glad you said it out loud."),
        ("I'm going to do it tonight.", "Please stay with me. Let's find someone to call."),
    ]
    lines: list[dict[str, str]] = []
    for n, (user_text, assistant_text) in enumerate(exchanges, 1):
        reply = browser.turn(f"inc-{n}", user_text, assistant_text, transcript=lines[-20:])
        assert reply.json() == {"recorded": False, "thread_id": thread_id, "message_count": 0}
        lines += [
            {"role": "user", "text": user_text},
            {"role": "assistant", "text": assistant_text},
        ]
    ended = browser.end()
    assert ended.status_code == 200
    assert ended.json()["finalized"] is False

    session_hash = hashlib.sha256(session_id.encode()).hexdigest()
    query = "SELECT level, reason FROM tools.crisis_log WHERE session_hash = %s ORDER BY level"
    deadline = time.monotonic() + 60
    while len(logged := rows(stack.database_url, query, session_hash)) < 3:
        assert time.monotonic() < deadline, f"crisis log rows so far: {logged}"
        time.sleep(0.2)
    time.sleep(0.5)  # anything screened later would be a row too many
    assert sorted(rows(stack.database_url, query, session_hash)) == [
        (2, "affirmed_after_check"),
        (2, "passive_ideation"),
        (3, "plan_after_ideation"),
    ]

    assert_no_trace(
        stack.database_url, (session_id, thread_id, marker, "Are you thinking about suicide")
    )
    client: Any = redis.Redis.from_url(stack.redis_url)
    try:
        assert list(client.scan_iter(f"opencouch:tools:{session_id}:*")) == []
        for key in client.scan_iter(f"*{session_id}*"):
            value = redis_value(client, key)
            assert marker.encode() not in value, key
            assert b"Are you thinking about suicide" not in value, key
    finally:
        client.close()
    for service in stack.services.values():
        log_path = getattr(service, "log_path", None)
        if log_path is not None and log_path.exists():
            assert marker not in log_path.read_text(errors="replace"), log_path.name


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_request"),
        ({"thread_id": ""}, "invalid_request"),
        ({"thread_id": "t", "memory_mode": "forever"}, "invalid_request"),
        ({"thread_id": "t", "assistant_voice": "robot"}, "invalid_request"),
        ({"thread_id": "bad id with spaces"}, "invalid_request"),
        ({"thread_id": "t", "surprise": 1}, "invalid_request"),
    ],
)
def test_a_bad_session_request_gets_a_4xx_with_a_code(
    api: httpx.Client, body: dict[str, object], code: str
) -> None:
    reply = api.post(f"{API}/session", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == code
    assert reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/tools", {"tool_name": "wait_for_user", "call_id": "c1"}, 401, "token_missing"),
        (
            "/turn",
            {"client_turn_id": "x", "user_text": "", "assistant_text": ""},
            401,
            "token_missing",
        ),
        ("/end", {}, 401, "token_missing"),
    ],
)
def test_session_calls_without_a_token_are_refused(
    api: httpx.Client, path: str, body: dict[str, object], status: int, code: str
) -> None:
    reply = api.post(f"{API}{path}", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


def test_bad_bodies_with_a_token_get_a_4xx_with_a_code(browser: VoiceClient) -> None:
    assert browser.start(unique("thread-e2e-bad")).status_code == 200
    missing = browser.http.post(f"{API}/turn", json={}, headers=browser.auth())
    assert missing.status_code == 422
    assert browser.end(feedback="meh").status_code == 422


def test_malformed_json_and_unknown_routes_are_clean_errors(api: httpx.Client) -> None:
    broken = api.post(
        f"{API}/session", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_request"
    missing = api.get("/api/voice/realtime/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = api.get(f"{API}/session")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_tool_calls_that_cannot_run_are_outputs_the_model_can_speak_around(
    browser: VoiceClient,
) -> None:
    assert browser.start(unique("thread-e2e-tools")).status_code == 200

    def output(tool_name: str, arguments: dict[str, object] | None = None) -> dict[str, object]:
        reply = browser.tool(tool_name, arguments)
        assert reply.status_code == 200, reply.text
        result: dict[str, object] = reply.json()["output"]
        return result

    assert output("wait_for_user") == {
        "status": "waiting",
        "should_respond": False,
        "instruction": "Do not reply now. Wait for the user to speak again.",
    }
    unknown = output("summon_dragon")
    assert unknown["status"] == "error"
    assert unknown["error"]["code"] == "unknown_tool"  # type: ignore[index]
    bad_args = output("wait_for_user", {"loudly": True})
    assert bad_args["error"]["code"] == "invalid_arguments"  # type: ignore[index]
    bad_style = output("load_therapeutic_response_skill", {"response_style": "sarcastic"})
    assert bad_style["error"]["code"] == "invalid_arguments"  # type: ignore[index]


def test_turns_acknowledged_while_memory_is_down_are_stored_and_finalized_after_it_returns(
    stack: Stack, browser: VoiceClient
) -> None:
    created = browser.start(unique("thread-e2e-outage"), memory_mode="persistent")
    assert created.status_code == 200, created.text
    session_id = browser.session_id

    memory = stack.services["memory"]
    assert memory.stop() == 0
    for n in (1, 2):
        turn = browser.turn(f"outage-{n}", f"line {n}", f"reply {n}")
        # JetStream holds the turn, so it is acknowledged even with its consumer down.
        assert turn.status_code == 200, turn.text
    assert (
        rows(stack.database_url, "SELECT 1 FROM memory.turns WHERE session_id = %s", session_id)
        == []
    )

    ended = browser.end()
    assert ended.status_code == 202, ended.text
    assert ended.json()["status"] in ("pending", "in_progress")
    assert ended.json()["finalized"] is False

    stack.services["memory"] = memory.restart()
    stack.services["memory"].wait_healthy()
    final = browser.finalization()
    for _ in range(120):
        if final.status_code == 200:
            break
        time.sleep(0.5)
        final = browser.finalization()
    assert final.status_code == 200, final.text
    assert final.json()["finalized"] is True
    assert final.json()["turn_count"] == 2
    assert rows(
        stack.database_url,
        "SELECT count(*) FROM memory.turns WHERE session_id = %s",
        session_id,
    ) == [(2,)]


def test_a_tool_whose_owner_is_down_or_never_answers_is_a_bounded_error_output(
    stack: Stack, browser: VoiceClient
) -> None:
    assert browser.start(unique("thread-e2e-slow-tool")).status_code == 200

    def call(tool_name: str, arguments: dict[str, object]) -> dict[str, object]:
        reply = browser.tool(tool_name, arguments)
        assert reply.status_code == 200, reply.text
        assert reply.json()["ok"] is False
        output: dict[str, object] = reply.json()["output"]
        return output

    tools = stack.services["tools"]
    assert tools.stop() == 0
    try:
        down = call("lookup_crisis_resources", {})
        assert down["error"]["code"] == "tool_unavailable"  # type: ignore[index]
        # The crisis path tells the model what to do instead, never to recall a number itself.
        assert "Do not name any hotline" in str(down["guidance"])

        # An owner that runs (it answers the gateway's check that one does) but hangs.
        with StandInOwner(stack.nats_url, "answer_grounded_lookup", seconds=None):
            hung = call("answer_grounded_lookup", {"query": "what is CBT"})
        assert hung["error"]["code"] == "tool_timeout"  # type: ignore[index]
    finally:
        stack.services["tools"] = tools.restart()
        stack.services["tools"].wait_healthy()


def test_history_after_a_reload_and_forgetting_everything(
    stack: Stack, browser: VoiceClient
) -> None:
    thread_id, user_id = unique("thread-e2e-forget"), unique("user-e2e-forget")
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    first_session = browser.session_id
    words = f"my sister is called Zephyrine-{uuid.uuid4().hex[:6]}"
    said = (
        f"I want to talk about {words}.",
        "I work nights at the bakery.",
        "It has been a strange few weeks for all of us.",
    )
    for n, text in enumerate(said):
        assert browser.turn(f"f-{n}", text, "Tell me more.").status_code == 200
    started = browser.tool(
        "start_guided_exercise", {"exercise_type": "grounding_box_breathing"}
    ).json()
    assert started["ok"] is True
    ended = browser.end()
    assert ended.status_code in (200, 202)
    for _ in range(240):
        if ended.status_code == 200:
            break
        time.sleep(0.25)
        ended = browser.finalization()
    # The session's arc quotes the user: the words are in the finalizer's and memory's rows.
    assert words in ended.json()["summary"]

    # A reload: a new session on the same thread shows the earlier turns.
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    history = browser.http.get(f"{API}/threads/{thread_id}/turns", headers=browser.auth())
    assert history.status_code == 200, history.text
    assert [turn["client_turn_id"] for turn in history.json()["turns"]] == ["f-0", "f-1", "f-2"]
    other = browser.http.get(
        f"{API}/threads/{unique('someone-else')}/turns", headers=browser.auth()
    )
    assert other.status_code == 403

    refused = browser.http.post(
        f"{API}/memory/erase", json={"confirm": "yes"}, headers=browser.auth()
    )
    assert refused.status_code == 422
    erased = browser.http.post(
        f"{API}/memory/erase", json={"confirm": "erase everything"}, headers=browser.auth()
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["owner"] == "user"
    # The session that asked is over; the history of a new one is empty.
    assert browser.turn("late", "still here?", "yes").status_code == 409
    assert browser.start(thread_id, user_id=user_id, memory_mode="persistent").status_code == 200
    assert (
        browser.http.get(f"{API}/threads/{thread_id}/turns", headers=browser.auth()).json()["turns"]
        == []
    )

    # The finalizer forgets on the erasure event; a late end of the session writes nothing.
    for _ in range(240):
        if not rows(
            stack.database_url,
            "SELECT 1 FROM finalizer.finalizations WHERE session_id = %s",
            first_session,
        ):
            break
        time.sleep(0.25)
    dump = "\n".join(
        str(row)
        for schema in ("memory", "tools", "finalizer")
        for table in rows(
            stack.database_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            schema,
        )
        for row in rows(stack.database_url, f'SELECT * FROM {schema}."{table[0]}"')
    )
    assert words not in dump
    assert first_session not in "\n".join(
        str(row) for row in rows(stack.database_url, "SELECT * FROM tools.exercise_runs")
    )
