"""The composed stack scales out: every replica of tools and memory takes its share of calls.

Runs against the Docker Compose stack that scripts/compose-e2e starts (it sets
``OPENCOUCH_E2E_COMPOSE_PROJECT`` and the other ``OPENCOUCH_E2E_*`` variables); skipped anywhere
else. Replicas are told apart by their nats.micro instance ids, and each one's share by the
request count it reports on ``$SRV.STATS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator

import httpx
import nats
import pytest

from opencouch.contracts.subjects import tool_subject
from opencouch.testing.compose import ComposeProject, composed_project
from opencouch.testing.processes import Stack
from opencouch.testing.voice_client import VoiceClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not composed_project(), reason="needs the stack of scripts/compose-e2e (OPENCOUCH_E2E_*)"
    ),
]

# Calls made at most before giving up on a replica that never gets one: with replicas chosen at
# random by the queue group, all of them answer long before this.
MAX_CALLS = 300


@pytest.fixture(scope="module")
def project() -> ComposeProject:
    found = composed_project()
    assert found is not None
    return found


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


async def requests_per_replica(
    nats_url: str, service: str, subject: str, replicas: int
) -> dict[str, int]:
    """``{instance id: requests it handled on subject}``, once ``replicas`` replicas answer a ping."""
    nc = await nats.connect(nats_url)
    try:
        inbox = nc.new_inbox()
        replies = await nc.subscribe(inbox)
        ids: set[str] = set()
        # Bounded roll call: ask again until as many replicas answered as there should be.
        for _ in range(30):
            await nc.publish(f"$SRV.PING.{service}", b"", reply=inbox)
            with contextlib.suppress(nats.errors.TimeoutError):
                while len(ids) < replicas:
                    ids.add(json.loads((await replies.next_msg(timeout=2)).data)["id"])
            if len(ids) >= replicas:
                break
        counts = {}
        for instance in ids:
            stats = await nc.request(f"$SRV.STATS.{service}.{instance}", b"", timeout=10)
            counts[instance] = sum(
                endpoint["num_requests"]
                for endpoint in json.loads(stats.data)["endpoints"]
                if endpoint["subject"] == subject
            )
        return counts
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("service", "replicas", "tool"),
    [("tools", 3, "lookup_crisis_resources"), ("memory", 2, "show_memory_status")],
)
def test_every_replica_answers_tool_calls(
    stack: Stack,
    api: httpx.Client,
    project: ComposeProject,
    service: str,
    replicas: int,
    tool: str,
) -> None:
    project.scale(service, replicas)
    browser = VoiceClient(api)
    assert browser.start(f"thread-scale-{uuid.uuid4().hex[:12]}").status_code == 200
    subject = tool_subject(tool)
    name = f"opencouch-{service}"
    before = asyncio.run(requests_per_replica(stack.nats_url, name, subject, replicas))
    assert len(before) == replicas, f"{service} replicas answering a ping: {sorted(before)}"

    served: dict[str, int] = {}
    for calls in range(1, MAX_CALLS + 1):
        reply = browser.tool(tool)
        assert reply.status_code == 200, reply.text
        assert reply.json()["output"].get("status") != "error", reply.text
        if calls % 10 == 0:
            now = asyncio.run(requests_per_replica(stack.nats_url, name, subject, replicas))
            served = {i: count - before.get(i, 0) for i, count in now.items()}
            if len(served) == replicas and all(served.values()):
                break
    print(f"{service}: {calls} calls of {tool}, per replica: {served}")
    assert len(served) == replicas
    assert all(served.values()), f"a replica of {service} took no call: {served}"
    assert sum(served.values()) == calls
