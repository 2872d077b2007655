"""One voice session end to end, every service a real process on real NATS, Redis, Postgres.

The ``stack`` fixture (opencouch.testing.fixtures) starts them here, or is the Docker Compose
stack that scripts/compose-e2e names in ``OPENCOUCH_E2E_*``.

/session (secret minted by the emulator through the openai SDK) -> /tools
lookup_crisis_resources -> three /turn -> /end -> the turns and the finalization row are in
Postgres exactly once each, and every service stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator

import httpx
import nats
import psycopg
import pytest

from opencouch.contracts.subjects import tool_subject
from opencouch.testing.openai_spec import validate_against
from opencouch.testing.processes import Stack

pytestmark = pytest.mark.e2e

API = "/api/voice/realtime"


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


def unique(name: str) -> str:
    """Ids unique to this run: Redis and NATS outlive a test run, the database does not."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def rows(database_url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def test_a_persistent_voice_session_is_recorded_and_finalized_once(
    stack: Stack, api: httpx.Client
) -> None:
    thread_id, user_id = unique("thread-e2e"), unique("user-e2e")

    created = api.post(
        f"{API}/session",
        json={
            "thread_id": thread_id,
            "user_id": user_id,
            "memory_mode": "persistent",
            "assistant_voice": "marin",
        },
    )
    assert created.status_code == 200, created.text
    session = created.json()
    session_id = session["session_id"]
    assert session["client_secret"]["value"].startswith("ek_")
    assert session["realtime_calls_url"] == f"{stack.emulator_url}/v1/realtime/calls"
    config = session["session"]
    validate_against("RealtimeSessionCreateRequestGA", config)
    assert config["audio"]["output"]["voice"] == "marin"
    assert config["audio"]["input"]["turn_detection"]["interrupt_response"] is True
    assert config["audio"]["input"]["transcription"]["model"]
    assert all(tool["parameters"]["additionalProperties"] is False for tool in config["tools"])
    assert {"show_saved_memory", "lookup_crisis_resources"} <= {t["name"] for t in config["tools"]}

    minted = httpx.get(
        f"{stack.emulator_url}/_emulator/client_secrets/{session['client_secret']['value']}"
    ).json()
    assert minted["safety_identifier"] == hashlib.sha256(user_id.encode()).hexdigest()
    assert minted["session"]["instructions"] == config["instructions"]

    tool = api.post(
        f"{API}/tools",
        json={
            "thread_id": thread_id,
            "session_id": session_id,
            "memory_mode": "persistent",
            "tool_name": "lookup_crisis_resources",
            "arguments": {},
            "current_user_message": "I'm in Toronto and I don't want to be here anymore",
            "transcript": [{"role": "user", "text": "I don't want to be here anymore"}],
        },
    )
    assert tool.status_code == 200, tool.text
    output = tool.json()["output"]
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
    for turn in turns:
        body = {
            "thread_id": thread_id,
            "session_id": session_id,
            "memory_mode": "persistent",
            **turn,
        }
        reply = api.post(f"{API}/turn", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is True
        counts.append(reply.json()["message_count"])
        # The browser's retry of an acknowledged turn gets the same answer, stored once.
        again = api.post(f"{API}/turn", json=body)
        assert again.json() == reply.json()
    assert counts == [2, 4, 6]

    reused = api.post(
        f"{API}/turn",
        json={
            "thread_id": thread_id,
            "session_id": session_id,
            "memory_mode": "persistent",
            "client_turn_id": "turn-1",
            "user_text": "something else",
            "assistant_text": "entirely",
        },
    )
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "turn_conflict"

    ended = api.post(
        f"{API}/end",
        json={
            "thread_id": thread_id,
            "session_id": session_id,
            "memory_mode": "persistent",
            "feedback": "positive",
        },
    )
    assert ended.status_code == 200, ended.text
    result = ended.json()
    assert result["finalized"] is True
    assert result["status"] == "completed"
    assert result["turn_count"] == 3

    # Ending again (a retry, or a second tab) reports the same finalization.
    again = api.post(
        f"{API}/end",
        json={"thread_id": thread_id, "session_id": session_id, "memory_mode": "persistent"},
    )
    assert again.status_code == 200
    assert again.json()["finalized_at"] == result["finalized_at"]

    stored = rows(
        stack.database_url,
        "SELECT client_turn_id, route, response_style FROM memory.turns WHERE session_id = %s ORDER BY id",
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

    # A later session of the same thread starts from the stored message count.
    later = api.post(
        f"{API}/session",
        json={"thread_id": thread_id, "user_id": user_id, "memory_mode": "persistent"},
    )
    assert later.status_code == 200
    next_turn = api.post(
        f"{API}/turn",
        json={
            "thread_id": thread_id,
            "memory_mode": "persistent",
            "client_turn_id": "turn-4",
            "user_text": "Back again.",
            "assistant_text": "Welcome back.",
        },
    )
    assert next_turn.json()["message_count"] == 8


def test_incognito_keeps_nothing_and_refuses_persistent_tools(
    stack: Stack, api: httpx.Client
) -> None:
    thread_id = unique("thread-e2e-incognito")
    created = api.post(f"{API}/session", json={"thread_id": thread_id})
    assert created.status_code == 200, created.text
    session = created.json()
    assert session["memory_mode"] == "incognito"
    names = {tool["name"] for tool in session["session"]["tools"]}
    assert "show_saved_memory" not in names
    assert "show_memory_status" in names
    assert "remember" not in session["session"]["instructions"].lower().split("never say")[0]

    status = api.post(
        f"{API}/tools",
        json={
            "thread_id": thread_id,
            "tool_name": "show_memory_status",
            "memory_mode": "persistent",
        },
    ).json()["output"]
    # Incognito is a floor: asking for persistent on a later call does not raise it.
    assert status["memory_enabled"] is False

    refused = api.post(
        f"{API}/tools", json={"thread_id": thread_id, "tool_name": "show_saved_memory"}
    ).json()["output"]
    assert refused["status"] == "error"
    assert refused["error"]["code"] == "tool_not_available_in_memory_mode"

    turn = api.post(
        f"{API}/turn",
        json={
            "thread_id": thread_id,
            "memory_mode": "persistent",
            "client_turn_id": "t1",
            "user_text": "a secret",
            "assistant_text": "kept safe",
        },
    )
    assert turn.json() == {"recorded": False, "thread_id": thread_id, "message_count": 0}
    ended = api.post(f"{API}/end", json={"thread_id": thread_id})
    assert ended.status_code == 200
    assert ended.json()["finalized"] is False
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


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/session", {}, 422, "invalid_request"),
        ("/session", {"thread_id": ""}, 422, "invalid_request"),
        ("/session", {"thread_id": "t", "memory_mode": "forever"}, 422, "invalid_request"),
        ("/session", {"thread_id": "t", "assistant_voice": "robot"}, 422, "invalid_request"),
        ("/session", {"thread_id": "bad id with spaces"}, 422, "invalid_request"),
        ("/session", {"thread_id": "t", "surprise": 1}, 422, "invalid_request"),
        (
            "/tools",
            {"thread_id": "no-such-thread", "tool_name": "wait_for_user"},
            404,
            "voice_session_not_found",
        ),
        (
            "/turn",
            {
                "thread_id": "no-such-thread",
                "client_turn_id": "x",
                "user_text": "",
                "assistant_text": "",
            },
            404,
            "voice_session_not_found",
        ),
        ("/turn", {"thread_id": "t"}, 422, "invalid_request"),
        ("/end", {"thread_id": "no-such-thread"}, 404, "voice_session_not_found"),
        ("/end", {"thread_id": "t", "feedback": "meh"}, 422, "invalid_request"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_code(
    api: httpx.Client, path: str, body: dict[str, object], status: int, code: str
) -> None:
    reply = api.post(f"{API}{path}", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert reply.json()["error"]["message"]


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
    api: httpx.Client,
) -> None:
    thread_id = unique("thread-e2e-tools")
    assert api.post(f"{API}/session", json={"thread_id": thread_id}).status_code == 200

    def output(tool_name: str, arguments: dict[str, object] | None = None) -> dict[str, object]:
        reply = api.post(
            f"{API}/tools",
            json={"thread_id": thread_id, "tool_name": tool_name, "arguments": arguments or {}},
        )
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
    stack: Stack, api: httpx.Client
) -> None:
    thread_id = unique("thread-e2e-outage")
    created = api.post(f"{API}/session", json={"thread_id": thread_id, "memory_mode": "persistent"})
    assert created.status_code == 200, created.text
    session_id = created.json()["session_id"]

    memory = stack.services["memory"]
    assert memory.stop() == 0
    for n in (1, 2):
        turn = api.post(
            f"{API}/turn",
            json={
                "thread_id": thread_id,
                "memory_mode": "persistent",
                "client_turn_id": f"outage-{n}",
                "user_text": f"line {n}",
                "assistant_text": f"reply {n}",
            },
        )
        # JetStream holds the turn, so it is acknowledged even with its consumer down.
        assert turn.status_code == 200, turn.text
    assert (
        rows(stack.database_url, "SELECT 1 FROM memory.turns WHERE session_id = %s", session_id)
        == []
    )

    ended = api.post(f"{API}/end", json={"thread_id": thread_id, "memory_mode": "persistent"})
    assert ended.status_code == 202, ended.text
    assert ended.json()["status"] in ("pending", "in_progress")
    assert ended.json()["finalized"] is False

    stack.services["memory"] = memory.restart()
    stack.services["memory"].wait_healthy()
    final = api.post(f"{API}/end", json={"thread_id": thread_id, "memory_mode": "persistent"})
    for _ in range(60):
        if final.status_code == 200:
            break
        time.sleep(0.5)
        final = api.post(f"{API}/end", json={"thread_id": thread_id, "memory_mode": "persistent"})
    assert final.status_code == 200, final.text
    assert final.json()["finalized"] is True
    assert final.json()["turn_count"] == 2
    assert rows(
        stack.database_url,
        "SELECT count(*) FROM memory.turns WHERE session_id = %s",
        session_id,
    ) == [(2,)]


def test_a_tool_nobody_serves_or_that_never_answers_is_a_bounded_error_output(
    stack: Stack, api: httpx.Client
) -> None:
    thread_id = unique("thread-e2e-slow-tool")
    assert api.post(f"{API}/session", json={"thread_id": thread_id}).status_code == 200

    def call() -> dict[str, object]:
        reply = api.post(
            f"{API}/tools",
            json={
                "thread_id": thread_id,
                "tool_name": "answer_grounded_lookup",
                "arguments": {"query": "what is CBT"},
            },
        )
        assert reply.status_code == 200, reply.text
        output: dict[str, object] = reply.json()["output"]
        return output

    assert call()["error"]["code"] == "tool_unavailable"  # type: ignore[index]

    async def hold_calls_without_answering() -> None:
        nc = await nats.connect(stack.nats_url)
        await nc.subscribe(tool_subject("answer_grounded_lookup"), cb=_ignore)
        await nc.flush()
        try:
            result = await asyncio.to_thread(call)
        finally:
            await nc.close()
        assert result["error"]["code"] == "tool_timeout"  # type: ignore[index]

    asyncio.run(hold_calls_without_answering())


async def _ignore(msg: object) -> None:
    """A tool owner that hangs: takes the request and never answers."""
