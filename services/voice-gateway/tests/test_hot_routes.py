"""``/tools`` and ``/turn`` are served without FastAPI's per-request machinery (``HotRoutes``),
and answer exactly as FastAPI does: the same replies, the same refusals, the same headers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from opencouch.voice_gateway.app import create_app
from opencouch.voice_gateway.hot_routes import hot_routes
from opencouch.voice_gateway.routes import API_PREFIX, router
from opencouch.voice_gateway.testing import (
    API,
    FakeOwners,
    bearer,
    open_session,
    settings_for_tests,
    unique,
)

COMPARED_HEADERS = (
    "content-type",
    "cache-control",
    "pragma",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "retry-after",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "vary",
)
WEB_ORIGIN = "http://localhost:8080"


def test_the_hot_routes_are_the_tool_call_and_the_turn() -> None:
    assert set(hot_routes(router)) == {f"{API_PREFIX}/tools", f"{API_PREFIX}/turn"}


@pytest.fixture
def gateways(
    gateway_nats_url: str, redis_url: str, emulator_url: str, owners: FakeOwners
) -> Iterator[tuple[TestClient, TestClient]]:
    """The gateway as it runs, and the same gateway with every route served by FastAPI."""
    settings = settings_for_tests(emulator_url, nats_url=gateway_nats_url, redis_url=redis_url)
    hot_app, routed_app = create_app(settings), create_app(settings, serve_hot_routes=False)
    with (
        TestClient(hot_app, raise_server_exceptions=False) as hot,
        TestClient(routed_app, raise_server_exceptions=False) as routed,
    ):
        yield hot, routed


@pytest.fixture
def routed_by_fastapi(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many request bodies FastAPI's route handling has read so far (the hot path reads
    the body itself)."""
    served = 0
    body = Request.body

    async def counted(self: Request) -> bytes:
        nonlocal served
        served += 1
        return await body(self)

    monkeypatch.setattr(Request, "body", counted)
    return lambda: served


Call = Callable[[TestClient, dict[str, Any], str], Any]


def _tool(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_name": name, "call_id": call_id, "arguments": arguments}


def _post(path: str, body: Any = None, **options: Any) -> Call:
    extra_headers = options.pop("headers", {})

    def call(client: TestClient, session: dict[str, Any], run: str) -> Any:
        headers = {**bearer(session), **extra_headers}
        if "content" in options:
            return client.post(f"{API}{path}", headers=headers, **options)
        return client.post(f"{API}{path}", json=_ids(body, run), headers=headers)

    return call


def _sent_twice(path: str, body: Any, headers: list[tuple[str, str]]) -> Call:
    """A call whose ``headers`` may repeat a name; ``{token}`` is the session's token."""

    def call(client: TestClient, session: dict[str, Any], run: str) -> Any:
        sent = [(name, value.replace("{token}", session["token"])) for name, value in headers]
        return client.post(f"{API}{path}", content=json.dumps(_ids(body, run)), headers=sent)

    return call


def _ids(body: Any, run: str) -> Any:
    """``body`` with ``{run}`` filled in, so each gateway's calls have ids of their own."""
    if isinstance(body, dict):
        return {key: _ids(value, run) for key, value in body.items()}
    if isinstance(body, str):
        return body.replace("{run}", run)
    return body


def _masked(reply: Any, session: dict[str, Any], run: str) -> Any:
    """``reply`` with the ids of its session and run masked, to compare with the other's."""
    if isinstance(reply, dict):
        return {key: _masked(value, session, run) for key, value in reply.items()}
    if isinstance(reply, list):
        return [_masked(value, session, run) for value in reply]
    if isinstance(reply, str):
        for key in ("thread_id", "session_id"):
            reply = reply.replace(session[key], f"<{key}>")
        return reply.replace(run, "<run>")
    return reply


# Each step runs on one session per gateway, in order; the replies must agree step by step.
STEPS: list[tuple[str, Call, bool]] = [
    ("a pure tool", _post("/tools", _tool("wait_for_user", "c1-{run}")), True),
    ("its replay", _post("/tools", _tool("wait_for_user", "c1-{run}")), True),
    (
        "a tool with state",
        _post("/tools", _tool("get_crisis_support_template", "c2-{run}", risk_level="moderate")),
        True,
    ),
    (
        "its replay",
        _post("/tools", _tool("get_crisis_support_template", "c2-{run}", risk_level="moderate")),
        True,
    ),
    (
        "a call id reused for another call",
        _post("/tools", _tool("get_crisis_support_template", "c2-{run}", risk_level="high")),
        True,
    ),
    ("an unknown tool", _post("/tools", _tool("no_such_tool", "c3-{run}")), True),
    ("arguments that do not fit", _post("/tools", _tool("wait_for_user", "c4-{run}", x=1)), True),
    ("no call id", _post("/tools", {"tool_name": "wait_for_user", "arguments": {}}), True),
    ("another session's id", _post("/tools", {**_tool("wait_for_user", "c5"), "session_id": "vs_" + "0" * 32}), True),
    ("a turn", _post("/turn", {"client_turn_id": "t1-{run}", "user_text": "hi", "assistant_text": "hello"}), True),
    ("its replay", _post("/turn", {"client_turn_id": "t1-{run}", "user_text": "hi", "assistant_text": "hello"}), True),
    ("a turn id reused", _post("/turn", {"client_turn_id": "t1-{run}", "user_text": "other", "assistant_text": "x"}), True),
    ("a pure tool from the web page", _post("/tools", _tool("wait_for_user", "c7-{run}"), headers={"Origin": WEB_ORIGIN}), True),
    ("a turn from another site", _post("/turn", {"client_turn_id": "t3-{run}", "user_text": "hi", "assistant_text": "x"}, headers={"Origin": "https://evil.example"}), True),
    # Refused before the route runs: FastAPI's path answers these on both gateways.
    ("a body that does not fit", _post("/tools", {"tool_name": 3}), False),
    ("no body", _post("/tools", content=b"", headers={"Content-Type": "application/json"}), False),
    ("not JSON", _post("/tools", content=b"{nope", headers={"Content-Type": "application/json"}), False),
    ("not declared JSON", _post("/tools", content=b"{}", headers={"Content-Type": "text/plain"}), False),
    ("a bad token", _post("/tools", _tool("wait_for_user", "c6"), headers={"Authorization": "Bearer x"}), False),
    ("no token", _post("/turn", {"client_turn_id": "t2"}, headers={"Authorization": ""}), False),
    # A header sent twice means its first value on both paths, as Starlette reads it.
    ("a bad token, then a good one", _sent_twice("/turn", {"client_turn_id": "t4-{run}", "user_text": "hi", "assistant_text": "x"}, [("Content-Type", "application/json"), ("Authorization", "Bearer x"), ("Authorization", "Bearer {token}")]), False),
    ("a good token, then a bad one", _sent_twice("/turn", {"client_turn_id": "t5-{run}", "user_text": "hi", "assistant_text": "x"}, [("Content-Type", "application/json"), ("Authorization", "Bearer {token}"), ("Authorization", "Bearer x")]), True),
    ("text, then JSON", _sent_twice("/turn", {"client_turn_id": "t6-{run}", "user_text": "hi", "assistant_text": "x"}, [("Content-Type", "text/plain"), ("Content-Type", "application/json"), ("Authorization", "Bearer {token}")]), False),
]  # fmt: skip


def test_both_paths_answer_every_step_alike(
    gateways: tuple[TestClient, TestClient], routed_by_fastapi: Callable[[], int]
) -> None:
    hot, routed = gateways
    sessions = {client: open_session(client) for client in gateways}
    for name, call, served_hot in STEPS:
        before = routed_by_fastapi()
        hot_reply = call(hot, sessions[hot], "RUNA")
        after_hot = routed_by_fastapi()
        routed_reply = call(routed, sessions[routed], "RUNB")
        assert (after_hot == before) is served_hot, name
        assert routed_by_fastapi() > after_hot, name  # the other gateway: FastAPI, always
        assert hot_reply.status_code == routed_reply.status_code, (name, hot_reply.text)
        assert _masked(hot_reply.json(), sessions[hot], "RUNA") == _masked(
            routed_reply.json(), sessions[routed], "RUNB"
        ), name
        for header in COMPARED_HEADERS:
            assert hot_reply.headers.get(header) == routed_reply.headers.get(header), (name, header)


def test_a_hot_route_answers_the_web_page_with_its_cors_headers(
    gateways: tuple[TestClient, TestClient], routed_by_fastapi: Callable[[], int]
) -> None:
    hot, _ = gateways
    session = open_session(hot)
    before = routed_by_fastapi()
    reply = hot.post(
        f"{API}/tools",
        json=_tool("wait_for_user", unique("call")),
        headers={**bearer(session), "Origin": WEB_ORIGIN},
    )
    assert routed_by_fastapi() == before  # served by the hot path
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == WEB_ORIGIN
    assert "retry-after" in reply.headers["access-control-expose-headers"].lower()
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_an_ended_session_is_refused_alike(gateways: tuple[TestClient, TestClient]) -> None:
    replies = []
    for client in gateways:
        session = open_session(client)
        assert client.post(f"{API}/end", json={}, headers=bearer(session)).status_code in (200, 202)
        replies.append(
            client.post(
                f"{API}/tools",
                json=_tool("wait_for_user", unique("call")),
                headers=bearer(session),
            )
        )
    hot_reply, routed_reply = replies
    assert hot_reply.status_code == routed_reply.status_code == 409
    assert hot_reply.json() == routed_reply.json()
    assert hot_reply.json()["error"]["code"] == "session_ended"


def test_a_hot_route_reads_a_body_sent_in_pieces(gateways: tuple[TestClient, TestClient]) -> None:
    hot, _ = gateways
    session = open_session(hot)
    pieces = [b'{"tool_name": "wait_for_user", ', b'"call_id": "', unique("c").encode(), b'", ']
    pieces.append(b'"arguments": {}}')
    reply = hot.post(
        f"{API}/tools",
        content=iter(pieces),
        headers={**bearer(session), "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["ok"] is True
