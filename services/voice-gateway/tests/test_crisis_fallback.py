"""When the crisis path cannot run (its owner down, or too slow), the model is told to give the
region-independent safety step and ask where the user is, never a number of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opencouch.contracts.tools import CRISIS_FALLBACK
from opencouch.voice_gateway.testing import (
    API,
    GatewayFactory,
    bearer,
    open_session,
    slow_owner,
    unique,
)

SLOW_SECONDS = 5.0


@pytest.fixture
def slow_lookup_only() -> Iterator[str]:
    """A NATS where ``lookup_crisis_resources`` answers too late and the template not at all."""
    with slow_owner("lookup_crisis_resources", SLOW_SECONDS) as url:
        yield url


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
