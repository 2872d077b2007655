"""When the crisis path cannot run (its owner down, or too slow), the model is told to give the
region-independent safety step and ask where the user is, never a number of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from opencouch.contracts.care import WaitForUserOutput
from opencouch.contracts.tools import CRISIS_FALLBACK, TOOL_CATALOG, ToolCallRequest
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.testing.servers import nats_server
from opencouch.voice_gateway.testing import API, GatewayFactory, bearer, open_session, unique

SLOW_SECONDS = 5.0


@pytest.fixture
def slow_lookup_only() -> Iterator[str]:
    """A NATS where ``lookup_crisis_resources`` answers too late and the template not at all."""

    async def slow(_: Any) -> WaitForUserOutput:
        await asyncio.sleep(SLOW_SECONDS)
        return WaitForUserOutput()

    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def serve(url: str) -> None:
        nc = await nats.connect(url)
        spec = TOOL_CATALOG["lookup_crisis_resources"]
        service = await start_service(
            nc,
            name=f"slow-{unique('tools')}",
            version="0.0.1",
            description="test",
            endpoints=[Endpoint(spec.name, spec.subject, ToolCallRequest, slow)],
        )
        ready.set()
        await stop.wait()
        await service.stop(grace=0)
        await nc.close()

    with nats_server(private=True) as url:
        thread = threading.Thread(target=loop.run_until_complete, args=(serve(url),))
        thread.start()
        assert ready.wait(20)
        try:
            yield url
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)


def test_a_crisis_tool_down_or_timed_out_gives_the_safe_fallback(
    make_gateway: GatewayFactory, slow_lookup_only: str
) -> None:
    # The session comes from a gateway whose owners answer; the calls go through one whose
    # NATS has no template owner and a crisis lookup slower than the tool timeout.
    session = open_session(make_gateway())
    down = make_gateway(nats_url=slow_lookup_only, tool_timeout_seconds=0.5)
    cases = [
        ("lookup_crisis_resources", {}, "tool_timeout"),
        ("get_crisis_support_template", {"risk_level": "high"}, "tool_unavailable"),
    ]
    for name, arguments, code in cases:
        reply = down.post(
            f"{API}/tools",
            json={"tool_name": name, "call_id": unique("call"), "arguments": arguments},
            headers=bearer(session),
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["ok"] is False
        assert body["output"]["error"]["code"] == code, name
        assert body["output"]["guidance"] == CRISIS_FALLBACK, name
