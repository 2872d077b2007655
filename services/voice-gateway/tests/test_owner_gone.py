"""A tool call whose owner dies while it waits (the only instance, or the replica holding it
while others run), or whose request NATS lost in a restart, is answered ``tool_unavailable``
then, not after the whole tool timeout; an owner that still runs is waited for, slow or hung,
up to it. A pure tool's call still waiting after a check on an owner that runs is asked again,
once: one held by a replica killed while others run is answered by another."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from opencouch.contracts.common import ErrorCode
from opencouch.contracts.tools import TOOL_CATALOG, ToolOwner
from opencouch.runtime.errors import ServiceError
from opencouch.testing.infra import PrivateNats
from opencouch.testing.servers import nats_server
from opencouch.voice_gateway.served_tools import (
    HELD_SILENCE_SECONDS,
    OWNER_CHECK_SECONDS,
    OwnerWatch,
)
from opencouch.voice_gateway.testing import (
    API,
    GatewayFactory,
    StandInOwner,
    bearer,
    lone_owner,
    open_session,
    unique,
)

# Long enough that a call given up at its deadline cannot pass for one given up at the check.
LONG_TIMEOUT = 30.0

ARGUMENTS = {"wait_for_user": {}, "get_crisis_support_template": {"risk_level": "high"}}


def _call(gateway: TestClient, session: dict[str, Any], name: str) -> dict[str, Any]:
    reply = gateway.post(
        f"{API}/tools",
        json={"tool_name": name, "call_id": unique("call"), "arguments": ARGUMENTS[name]},
        headers=bearer(session),
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@pytest.mark.parametrize("name", ["wait_for_user", "get_crisis_support_template"])
def test_an_owner_killed_mid_call_is_unavailable_before_the_deadline(
    make_gateway: GatewayFactory, name: str
) -> None:
    # A pure tool (asked while its claim is decided) and one that keeps state (claimed first).
    assert TOOL_CATALOG["wait_for_user"].pure
    assert not TOOL_CATALOG["get_crisis_support_template"].pure
    session = open_session(make_gateway())
    with lone_owner(name, seconds=None) as owner:
        gateway = make_gateway(nats_url=owner.url, tool_timeout_seconds=LONG_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(_call, gateway, session, name)
            assert owner.asked.wait(20)
            owner.kill()
            # At its deadline this would be tool_timeout, 30 s from now.
            body = calling.result(timeout=LONG_TIMEOUT - 5)
    assert body["ok"] is False
    assert body["output"]["error"]["code"] == "tool_unavailable"
    if TOOL_CATALOG[name].failure_guidance:  # the crisis path still says what to do instead
        assert body["output"]["guidance"] == TOOL_CATALOG[name].failure_guidance


def _holder(*replicas: StandInOwner) -> StandInOwner:
    """The replica a call reached."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.asked.is_set():
                return replica
        time.sleep(0.01)
    raise AssertionError("no replica was asked")


def test_a_replica_killed_mid_call_is_unavailable_before_the_deadline_while_others_run(
    make_gateway: GatewayFactory,
) -> None:
    """The owner still runs (its other replica answers every ping): only the held notes the
    killed replica no longer sends tell the gateway that nobody holds the call."""
    name = "get_crisis_support_template"
    session = open_session(make_gateway())
    with (
        nats_server(private=True) as url,
        StandInOwner(url, name, None) as first,
        StandInOwner(url, name, None) as second,
    ):
        gateway = make_gateway(nats_url=url, tool_timeout_seconds=LONG_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(_call, gateway, session, name)
            holder = _holder(first, second)
            holder.kill()
            # At its deadline this would be tool_timeout, 30 s from now.
            body = calling.result(timeout=LONG_TIMEOUT - 5)
        other = second if holder is first else first
        assert not other.asked.is_set()  # the call was never sent on again
    assert body["ok"] is False
    assert body["output"]["error"]["code"] == "tool_unavailable"
    assert body["output"]["guidance"] == TOOL_CATALOG[name].failure_guidance


def test_a_pure_call_held_by_a_replica_killed_mid_call_is_answered_by_another(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A pure tool asks for no held notes, and its owner still runs: the call is asked again,
    and the replica that runs answers it, long before the deadline."""
    name = "wait_for_user"
    session = open_session(make_gateway())
    asked_again = _asked_again(name)
    caplog.set_level(logging.INFO, "opencouch.voice_gateway")
    with nats_server(private=True) as url, StandInOwner(url, name, None) as holder:
        gateway = make_gateway(nats_url=url, tool_timeout_seconds=LONG_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(_call, gateway, session, name)
            assert holder.asked.wait(20)
            with StandInOwner(url, name, 0) as other:
                holder.kill()
                # At its deadline this would be tool_timeout, 30 s from now.
                body = calling.result(timeout=LONG_TIMEOUT - 5)
                assert other.asks == 1
    assert body["ok"] is True, body
    assert body["output"]["status"] == "waiting"  # the other replica's answer
    assert holder.asks == 1
    assert _asked_again(name) == asked_again + 1  # counted for the operators, and logged once
    [logged] = [r for r in caplog.records if r.getMessage() == "a pure tool's call asked again"]
    said = (logged.levelno, getattr(logged, "tool", None), getattr(logged, "owner", None))
    assert said == (logging.INFO, name, "tools")


def _asked_again(tool: str) -> float:
    counted = REGISTRY.get_sample_value("opencouch_tool_calls_asked_again_total", {"tool": tool})
    return counted or 0.0


# Longer than a check and than the silence after which a holder is taken for gone.
HELD = max(OWNER_CHECK_SECONDS, HELD_SILENCE_SECONDS) * 2


@pytest.mark.parametrize("name", ["wait_for_user", "get_crisis_support_template"])
def test_an_owner_that_runs_is_waited_for_past_the_check(
    make_gateway: GatewayFactory, name: str
) -> None:
    session = open_session(make_gateway())
    with lone_owner(name, seconds=HELD) as owner:
        gateway = make_gateway(nats_url=owner.url, tool_timeout_seconds=LONG_TIMEOUT)
        body = _call(gateway, session, name)
    assert body["ok"] is True, body
    assert body["output"]["status"] == "waiting"  # the stand-in's answer


@pytest.mark.parametrize("name", ["wait_for_user", "get_crisis_support_template"])
def test_an_owner_that_runs_and_never_answers_times_out(
    make_gateway: GatewayFactory, name: str
) -> None:
    session = open_session(make_gateway())
    with lone_owner(name, seconds=None) as owner:
        # Checked more than once before the deadline, and found running (or holding) each time.
        gateway = make_gateway(nats_url=owner.url, tool_timeout_seconds=HELD)
        body = _call(gateway, session, name)
    assert body["ok"] is False
    assert body["output"]["error"]["code"] == "tool_timeout"
    # A pure tool's call is asked again once, within the same deadline; any other, never.
    assert owner.asks == (2 if TOOL_CATALOG[name].pure else 1)


def test_a_held_call_is_answered_after_a_nats_restart(
    make_gateway: GatewayFactory, restartable_nats: PrivateNats
) -> None:
    """The owner holds a call that keeps state as NATS restarts, and says so once it is back
    on the bus: its answer comes on the new connection, and is given."""
    name = "get_crisis_support_template"
    session = open_session(make_gateway())
    server = restartable_nats
    server.start()
    with StandInOwner(server.url, name, HELD) as owner:
        gateway = make_gateway(nats_url=server.url, tool_timeout_seconds=LONG_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(_call, gateway, session, name)
            assert owner.asked.wait(20)
            server.stop()
            server.start()
            body = calling.result(timeout=LONG_TIMEOUT - 5)
    assert body["ok"] is True, body
    assert body["output"]["status"] == "waiting"  # the stand-in's answer


def test_a_call_whose_request_a_nats_restart_lost_is_unavailable_before_the_deadline(
    make_gateway: GatewayFactory, restartable_nats: PrivateNats
) -> None:
    """The owner holds the call as NATS restarts, and is back on it at once: it runs, but the
    answer the call waits for went with the old connection."""
    session = open_session(make_gateway())
    server = restartable_nats
    server.start()
    with StandInOwner(server.url, "wait_for_user", None) as owner:
        gateway = make_gateway(nats_url=server.url, tool_timeout_seconds=LONG_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            calling = pool.submit(_call, gateway, session, "wait_for_user")
            assert owner.asked.wait(20)
            server.stop()
            server.start()
            # At its deadline this would be tool_timeout, 30 s from now.
            body = calling.result(timeout=LONG_TIMEOUT - 5)
    assert body["ok"] is False
    assert body["output"]["error"]["code"] == "tool_unavailable"


class _Owners:
    """Which owners run, as ``ServedTools.owner_running`` would say (counting the checks), and
    which connection to NATS is up, as ``ServedTools.bus_epoch`` would."""

    def __init__(self, *running: ToolOwner) -> None:
        self.running = set(running)
        self.checked: list[ToolOwner] = []
        self.epoch: int | None = 0

    def bus_epoch(self) -> int | None:
        return self.epoch

    async def owner_running(self, owner: ToolOwner) -> bool:
        self.checked.append(owner)
        return owner in self.running


class _Clock:
    """The watch's clock, moved on by the test: a stall of the machine is not a wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


EVERY = 1.0


SILENCE = 2.0


def _watch(owners: _Owners) -> tuple[OwnerWatch, _Clock, asyncio.Future[str]]:
    """A watch on ``owners`` with the test's clock, and an answer that comes when the test
    gives it."""
    clock = _Clock()
    watch = OwnerWatch(owners, every=EVERY, clock=clock, silence=SILENCE)  # type: ignore[arg-type]
    return watch, clock, asyncio.get_running_loop().create_future()


async def _check(watch: OwnerWatch, stalled: bool = False) -> None:
    """One check, and a step for a call it gave up to end."""
    await watch.check(stalled=stalled)
    await asyncio.sleep(0)


async def _given_up(call: asyncio.Future[str]) -> None:
    """``call`` ended ``service_unavailable``: given up by the watch."""
    with pytest.raises(ServiceError) as raised:
        await call
    assert raised.value.code is ErrorCode.SERVICE_UNAVAILABLE


async def _waiting(
    watch: OwnerWatch, owner: ToolOwner, answer: asyncio.Future[str], notes: str | None = None
) -> asyncio.Future[str]:
    """A call to ``owner`` waiting for ``answer`` (its held notes asked on ``notes``),
    registered with the watch."""
    call = asyncio.ensure_future(watch.wait(owner, asyncio.shield(answer), notes))
    await asyncio.sleep(0)
    return call


async def test_one_check_per_owner_gives_up_only_the_long_waits_on_a_gone_owner() -> None:
    owners = _Owners(ToolOwner.MEMORY)
    watch, clock, never = _watch(owners)

    on_tools = [await _waiting(watch, ToolOwner.TOOLS, never) for _ in range(5)]
    on_memory = await _waiting(watch, ToolOwner.MEMORY, never)
    clock.now += EVERY * 0.9
    await watch.check()  # nobody has waited long enough yet: nothing is checked
    assert owners.checked == []
    clock.now += EVERY * 0.2
    late = await _waiting(watch, ToolOwner.TOOLS, never)  # too recent to be given up
    await watch.check()
    assert sorted(owners.checked) == [ToolOwner.MEMORY, ToolOwner.TOOLS]  # one each
    for call in on_tools:
        await _given_up(call)
    assert not on_memory.done()
    assert not late.done()
    never.set_result("answered")
    assert await on_memory == "answered"
    assert await late == "answered"


class _Again:
    """A pure call's second asking: counted, answered when the test gives the answer."""

    def __init__(self) -> None:
        self.sent = 0
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def __call__(self) -> Awaitable[str]:
        self.sent += 1
        return asyncio.shield(self.answer)


async def _pure_waiting(
    owners: _Owners,
) -> tuple[OwnerWatch, _Clock, asyncio.Future[str], _Again]:
    """A watch on ``owners``, and a pure tool's call to the tools service waiting on it for an
    answer that never comes, which may be asked ``again``."""
    watch, clock, never = _watch(owners)
    again = _Again()
    call = asyncio.ensure_future(watch.wait(ToolOwner.TOOLS, asyncio.shield(never), None, again))
    await asyncio.sleep(0)
    return watch, clock, call, again


async def test_a_pure_call_still_waiting_on_an_owner_that_runs_is_asked_again_once() -> None:
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, call, again = await _pure_waiting(owners)
    clock.now += EVERY * 0.9
    await _check(watch)  # not waiting long enough yet
    assert again.sent == 0
    clock.now += EVERY * 0.3
    await _check(watch)
    assert again.sent == 1
    assert not call.done()
    for _ in range(3):  # once only: an owner that runs and is slow is waited for
        clock.now += EVERY * 1.2
        await _check(watch)
    assert again.sent == 1
    assert not call.done()
    again.answer.set_result("answered again")
    assert await call == "answered again"


async def test_a_pure_call_on_an_owner_that_no_longer_runs_is_given_up_not_asked_again() -> None:
    watch, clock, call, again = await _pure_waiting(_Owners())
    clock.now += EVERY * 1.2
    await _check(watch)
    await _given_up(call)
    assert again.sent == 0


async def test_a_pure_call_cancelled_by_its_caller_as_it_is_asked_again_is_cancelled() -> None:
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, call, again = await _pure_waiting(owners)
    clock.now += EVERY * 1.2
    await watch.check()  # to be asked again on its next step...
    call.cancel()  # ...when its caller drops it (a refused call's early answer)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert again.sent == 0
    clock.now += EVERY * 1.2
    await watch.check()  # it left the watch when it ended
    assert owners.checked == [ToolOwner.TOOLS]


async def test_a_call_cancelled_by_its_caller_is_not_given_up_as_unavailable() -> None:
    owners = _Owners()
    watch, clock, never = _watch(owners)
    call = await _waiting(watch, ToolOwner.TOOLS, never)
    call.cancel()  # a refused call's early answer, dropped
    with pytest.raises(asyncio.CancelledError):
        await call
    clock.now += EVERY * 2
    await watch.check()  # it left the watch when it ended: nothing to ask about
    assert owners.checked == []


async def test_calls_sent_on_a_lost_connection_get_a_check_once_it_is_back() -> None:
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, never = _watch(owners)

    before = await _waiting(watch, ToolOwner.TOOLS, never)
    owners.epoch = None  # NATS goes away...
    during = await _waiting(watch, ToolOwner.TOOLS, never)
    owners.epoch = 1  # ...and is back before the watch looks
    clock.now += EVERY * 1.2
    await watch.check()  # seen to be back: answers on their way have a check's time
    assert not before.done()
    assert not during.done()
    after = await _waiting(watch, ToolOwner.TOOLS, never)  # sent on the connection that is up
    clock.now += EVERY * 1.2
    await watch.check()
    for call in (before, during):
        await _given_up(call)
    assert not after.done()
    assert owners.checked == [ToolOwner.TOOLS, ToolOwner.TOOLS]  # it runs: only the bus failed
    never.set_result("answered")
    assert await after == "answered"


async def test_calls_wait_a_check_into_an_outage_then_end_unavailable() -> None:
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, never = _watch(owners)
    call = await _waiting(watch, ToolOwner.TOOLS, never)
    clock.now += EVERY * 1.2
    owners.epoch = None
    await watch.check()  # down only now: a restart is over within a check as often as not
    assert not call.done()
    clock.now += EVERY * 1.2
    await watch.check()  # still down
    await _given_up(call)


async def test_a_call_whose_holder_falls_silent_is_given_up_though_its_owner_runs() -> None:
    owners = _Owners(ToolOwner.TOOLS)  # another replica answers every ping
    watch, clock, never = _watch(owners)
    held = await _waiting(watch, ToolOwner.TOOLS, never, "opencouch.v1.held.me.1")
    kept = await _waiting(watch, ToolOwner.TOOLS, never, "opencouch.v1.held.me.2")
    for _ in range(4):  # both held, and said so, for 4 checks
        clock.now += EVERY * 0.5
        watch.heard("opencouch.v1.held.me.1")
        watch.heard("opencouch.v1.held.me.2")
        clock.now += EVERY * 0.5
        await watch.check()
    assert not held.done()
    for _ in range(3):  # the first one's holder is killed; the other still says so
        clock.now += EVERY * 0.5
        watch.heard("opencouch.v1.held.me.2")
        clock.now += EVERY * 0.5
        await _check(watch)
        assert held.done() is (clock.now - 1003.5 > SILENCE)  # its holder last said so then
    await _given_up(held)
    assert not kept.done()
    assert owners.checked == []  # a noted call is never decided by whether its owner runs
    watch.heard("opencouch.v1.held.me.1")  # a late note for a call given up: nothing to do
    never.set_result("answered")
    assert await kept == "answered"


async def test_a_noted_call_never_noted_is_given_up_after_the_silence() -> None:
    """Its holder died before its first note was due, or its request never reached one."""
    owners = _Owners(ToolOwner.MEMORY)
    watch, clock, never = _watch(owners)
    call = await _waiting(watch, ToolOwner.MEMORY, never, "opencouch.v1.held.me.9")
    clock.now += SILENCE * 0.9
    await _check(watch)
    assert not call.done()
    clock.now += SILENCE * 0.2
    await watch.check()
    await _given_up(call)
    assert owners.checked == []


async def test_a_gateway_that_was_stalled_reads_its_notes_before_it_calls_a_holder_silent() -> None:
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, never = _watch(owners)
    call = await _waiting(watch, ToolOwner.TOOLS, never, "opencouch.v1.held.me.3")
    clock.now += SILENCE * 2  # the gateway's own loop did not run: the notes are unread
    await _check(watch, stalled=True)
    assert not call.done()
    watch.heard("opencouch.v1.held.me.3")  # read now
    clock.now += EVERY
    await _check(watch)
    assert not call.done()
    never.set_result("answered")
    assert await call == "answered"


async def test_a_call_whose_holder_says_so_after_a_nats_restart_is_waited_for() -> None:
    """Its request was not lost: the holder heard it, and answers on the new connection."""
    owners = _Owners(ToolOwner.TOOLS)
    watch, clock, never = _watch(owners)
    held = await _waiting(watch, ToolOwner.TOOLS, never, "opencouch.v1.held.me.4")
    silent = await _waiting(watch, ToolOwner.TOOLS, never, "opencouch.v1.held.me.5")
    watch.heard("opencouch.v1.held.me.4")
    watch.heard("opencouch.v1.held.me.5")  # both heard on the first connection
    owners.epoch = 1  # NATS restarted
    for _ in range(2):  # a check sees it back, the next gives up what it sent before
        clock.now += EVERY * 0.5
        watch.heard("opencouch.v1.held.me.4")  # its holder is back on the bus, and says so
        clock.now += EVERY * 0.5
        await watch.check()
    await _given_up(silent)
    assert not held.done()
    never.set_result("answered")
    assert await held == "answered"
