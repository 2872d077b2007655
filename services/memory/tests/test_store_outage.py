"""A store that memory cannot reach is memory's own ``service_unavailable``, within the time its
callers wait, not their timeout.

Memory's Redis client once took redis-py's default socket timeout (5 s in 8.1), and its pool
waited 10 s for a Postgres connection, both longer than the gateway waits for memory (3 s): a
wedged Redis or a Postgres that is down was the caller's timeout, never memory's reply. And its
reply, when it came, was ``internal_error`` with a traceback logged for every request.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode
from opencouch.contracts.memory import (
    CommitMemoryCandidatesReply,
    ThreadHistoryReply,
    ThreadHistoryRequest,
)
from opencouch.memory.testing import Conversation
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import request
from opencouch.testing.infra import PrivatePostgres
from opencouch.testing.processes import ServiceProcess
from opencouch.testing.servers import silent_port

CALLERS_WAIT = 3.0
"""The gateway's default ``memory_timeout_seconds``: the shortest wait of memory's callers."""


async def test_a_wedged_redis_is_unavailable_within_the_callers_wait(
    start_memory: Callable[..., ServiceProcess], nats_url: str
) -> None:
    with silent_port() as port:
        memory = await asyncio.to_thread(start_memory, redis_url=f"redis://127.0.0.1:{port}")
        conversation = Conversation()
        nc = await nats.connect(nats_url)
        try:
            with pytest.raises(ServiceError) as failed:
                await request(
                    nc,
                    subjects.MEMORY_COMMIT_CANDIDATES,
                    conversation.commit_request(),
                    CommitMemoryCandidatesReply,
                    timeout=CALLERS_WAIT,
                )
        finally:
            await nc.close()
    # The service's own reply, not the caller's timeout (service_timeout).
    assert failed.value.code is ErrorCode.SERVICE_UNAVAILABLE
    assert "redis" in failed.value.message
    _warned_without_a_traceback(memory)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A Postgres of this test only, which it may stop."""
    with tempfile.TemporaryDirectory(prefix="opencouch-memory-pg-") as root:
        os.chmod(root, 0o755)  # the postgres user runs it
        server = PrivatePostgres(Path(root))
        server.prepare()
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def test_postgres_down_is_unavailable_within_the_callers_wait(
    start_memory: Callable[..., ServiceProcess],
    nats_url: str,
    private_postgres: PrivatePostgres,
) -> None:
    memory = await asyncio.to_thread(start_memory, database_url=private_postgres.url)
    asking = ThreadHistoryRequest(thread_id=Conversation().thread_id)
    nc = await nats.connect(nats_url)
    try:
        page = await request(
            nc, subjects.MEMORY_THREAD_TURNS, asking, ThreadHistoryReply, timeout=CALLERS_WAIT
        )
        assert page.turns == []
        await asyncio.to_thread(private_postgres.stop)
        with pytest.raises(ServiceError) as failed:
            await request(
                nc, subjects.MEMORY_THREAD_TURNS, asking, ThreadHistoryReply, timeout=CALLERS_WAIT
            )
    finally:
        await nc.close()
    assert failed.value.code is ErrorCode.SERVICE_UNAVAILABLE
    assert "postgres" in failed.value.message
    _warned_without_a_traceback(memory)


def _warned_without_a_traceback(memory: ServiceProcess) -> None:
    lines = [json.loads(line) for line in memory.log_tail(400).splitlines() if line.startswith("{")]
    assert any(line["msg"] == "store unreachable" for line in lines)
    assert not [line for line in lines if "exc" in line]
