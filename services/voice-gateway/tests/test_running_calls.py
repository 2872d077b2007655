"""A replay of a tool call that keeps state, whose first call will never store an output, is
answered ``tool_unavailable`` at once, not after the whole tool timeout: its claimant was killed
(nobody answers for it on NATS), or says it no longer runs the call (it answered 503 without
running it, because Redis's reply to its claim was lost). A replay whose claimant still runs the
call waits for its output. A claim whose reply Redis never sent, sent again by the same attempt,
is that attempt's own, on a real Redis behind a proxy that cuts the reply off."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from opencouch.contracts.tools import TOOL_CATALOG
from opencouch.contracts.voice_api import ToolsRequest
from opencouch.testing.servers import free_port
from opencouch.voice_gateway.running_calls import RunningCalls
from opencouch.voice_gateway.testing import (
    API,
    FakeOwners,
    GatewayFactory,
    bearer,
    open_session,
    session_store,
    unique,
)
from opencouch.voice_gateway.tool_calls import call_fingerprint
from opencouch.voice_gateway.voice_sessions import Caller, ClaimState, redis_key

TOOL = "show_memory_status"  # keeps state: claimed before it runs, its output stored

T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


def _caller(session: dict[str, Any]) -> Caller:
    return Caller(session["session_id"], session["thread_id"], None, "127.0.0.1")


async def _claim(redis_url: str, session: dict[str, Any], call_id: str, by: str) -> None:
    """Claim the call as the gateway would for the attempt ``by``, and store nothing."""
    redis = Redis.from_url(redis_url)
    try:
        fingerprint = call_fingerprint(
            TOOL_CATALOG[TOOL], ToolsRequest(tool_name=TOOL, call_id=call_id)
        )
        claim = await session_store(redis).claim_call(
            _caller(session), call_id, fingerprint, 30, by=by
        )
        assert claim.state is ClaimState.CLAIMED
    finally:
        await redis.aclose()


async def _store_output(redis_url: str, session: dict[str, Any], call_id: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        fingerprint = call_fingerprint(
            TOOL_CATALOG[TOOL], ToolsRequest(tool_name=TOOL, call_id=call_id)
        )
        await session_store(redis).store_call_output(
            session["session_id"], call_id, fingerprint, {"stored": "by the first"}, True
        )
    finally:
        await redis.aclose()


def _replay(gateway: TestClient, session: dict[str, Any], call_id: str) -> dict[str, Any]:
    reply = gateway.post(
        f"{API}/tools",
        json={"tool_name": TOOL, "call_id": call_id, "arguments": {}},
        headers=bearer(session),
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def _running(gateway: TestClient) -> RunningCalls:
    running: RunningCalls = gateway.app.state.gateway.running  # type: ignore[attr-defined]
    return running


# The tool timeout is long, so a replay given up at its deadline (tool_timeout) cannot pass for
# one answered when its claimant was found not running it.
LONG_TIMEOUT = 20.0


def test_a_replay_whose_claimant_was_killed_is_unavailable_and_never_runs_the_tool(
    make_gateway: GatewayFactory, redis_url: str, owners: FakeOwners
) -> None:
    gateway = make_gateway(tool_timeout_seconds=LONG_TIMEOUT)
    session = open_session(gateway, memory_mode="persistent")
    call_id = unique("call")
    # A gateway process that claimed the call and is gone: nothing on NATS answers for it.
    _run(_claim(redis_url, session, call_id, by=f"{uuid.uuid4().hex}.0"))
    body = _replay(gateway, session, call_id)
    assert body["ok"] is False
    assert body["output"]["error"]["code"] == "tool_unavailable"
    assert owners.calls_in(session, TOOL, call_id) == 0  # it may have run: never twice


def test_a_replay_whose_claimant_no_longer_runs_the_call_is_unavailable(
    make_gateway: GatewayFactory, redis_url: str, owners: FakeOwners
) -> None:
    """The claimant runs, but let the call go without an output (it answered 503 when its
    claim's reply was lost): it says so, and the replay ends then."""
    claimant = make_gateway(tool_timeout_seconds=LONG_TIMEOUT)
    gateway = make_gateway(tool_timeout_seconds=LONG_TIMEOUT)
    session = open_session(gateway, memory_mode="persistent")
    call_id = unique("call")
    attempt = _running(claimant).begin()
    _running(claimant).end(attempt)
    _run(_claim(redis_url, session, call_id, by=attempt))
    body = _replay(gateway, session, call_id)
    assert body["output"]["error"]["code"] == "tool_unavailable"
    assert owners.calls_in(session, TOOL, call_id) == 0


def test_a_replay_whose_claimant_still_runs_the_call_gets_its_output(
    make_gateway: GatewayFactory, redis_url: str, owners: FakeOwners
) -> None:
    claimant = make_gateway(tool_timeout_seconds=LONG_TIMEOUT)
    gateway = make_gateway(tool_timeout_seconds=LONG_TIMEOUT)
    session = open_session(gateway, memory_mode="persistent")
    call_id = unique("call")
    attempt = _running(claimant).begin()
    _run(_claim(redis_url, session, call_id, by=attempt))
    with ThreadPoolExecutor(1) as pool:
        replaying = pool.submit(_replay, gateway, session, call_id)
        # Asked at once and again a second later, the claimant says it still runs the call.
        with contextlib.suppress(TimeoutError):
            replaying.result(timeout=1.5)
        assert not replaying.done()
        # The first stores its output, then lets the call go (as ``_keep_output`` does).
        _run(_store_output(redis_url, session, call_id))
        _running(claimant).end(attempt)
        body = replaying.result(timeout=LONG_TIMEOUT)
    assert body == {"ok": True, "output": {"stored": "by the first"}}
    assert owners.calls_in(session, TOOL, call_id) == 0


def test_a_call_that_keeps_state_lets_its_attempt_go_once_its_output_is_stored(
    make_gateway: GatewayFactory, redis_url: str, owners: FakeOwners
) -> None:
    gateway = make_gateway()
    session = open_session(gateway, memory_mode="persistent")
    call_id = unique("call")
    first = _replay(gateway, session, call_id)
    assert first["ok"] is True
    # The output is stored after the reply: a replay gets it, and no attempt is left running.
    again = _replay(gateway, session, call_id)
    assert again == first
    assert len(_running(gateway)) == 0
    assert owners.calls_in(session, TOOL, call_id) == 1


# -- a claim whose reply Redis never sent --------------------------------------------------------


class ReplyCutter:
    """A TCP proxy to Redis that, when told, closes a connection instead of passing on the next
    reply: Redis ran the command, and the client never hears of it (as when Redis stops between
    running a command and writing its reply)."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self._upstream = upstream_port
        self.cut_next = threading.Event()
        self.cut = 0

    async def serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._connected, "127.0.0.1", self.port)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, up: bool) -> None:
            while data := await source.read(65536):
                if up and self.cut_next.is_set():
                    self.cut_next.clear()
                    self.cut += 1
                    break
                sink.write(data)
                await sink.drain()
            writer.close()
            up_writer.close()

        await asyncio.gather(
            pump(reader, up_writer, False), pump(up_reader, writer, True), return_exceptions=True
        )


@pytest.fixture
async def cutter(redis_url: str) -> AsyncIterator[ReplyCutter]:
    proxy = ReplyCutter(urlsplit(redis_url).port or 6379)
    server = await proxy.serve()
    yield proxy
    server.close()


async def test_a_claim_sent_again_after_its_reply_was_lost_is_its_attempts_own(
    cutter: ReplyCutter, redis_url: str, make_gateway: GatewayFactory
) -> None:
    gateway_session = open_session(make_gateway(), memory_mode="persistent")
    redis = Redis.from_url(urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{cutter.port}").geturl())
    try:
        store = session_store(redis)
        caller = _caller(gateway_session)
        # The claim script is loaded, and the batcher holds its connection.
        assert (await store.claim_call(caller, unique("call"), "fp", 8)).state is ClaimState.CLAIMED
        call_id, attempt = unique("call"), f"{uuid.uuid4().hex}.7"
        cutter.cut_next.set()
        claim = await store.claim_call(caller, call_id, "fp", 8, by=attempt)
        assert cutter.cut == 1  # Redis made the claim, and its reply never came
        assert claim.state is ClaimState.CLAIMED
        # Another attempt finds it claimed, by the first.
        other = await store.claim_call(caller, call_id, "fp", 8, by=f"{uuid.uuid4().hex}.7")
        assert other.state is ClaimState.SEEN
        assert other.by == attempt
        assert await redis.exists(redis_key("call", caller.session_id, call_id)) == 1
    finally:
        await redis.aclose()
