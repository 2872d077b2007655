"""A Redis that takes connections and never answers: memory replies with an error in time.

Memory holds a session's candidates and staged deletions in Redis. Its client once took
redis-py's default socket timeout (5 s in 8.1), longer than the gateway waits for memory
(3 s): a wedged Redis was the caller's timeout, never memory's own error reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode
from opencouch.contracts.memory import CommitMemoryCandidatesReply
from opencouch.memory.testing import Conversation
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.messaging import request
from opencouch.testing.processes import ServiceProcess
from opencouch.testing.servers import silent_port

CALLERS_WAIT = 3.0
"""The gateway's default ``memory_timeout_seconds``: the shortest wait of memory's callers."""


async def test_a_wedged_redis_is_an_error_reply_within_the_redis_timeout_not_a_wait(
    start_memory: Callable[..., ServiceProcess], nats_url: str
) -> None:
    with silent_port() as port:
        await asyncio.to_thread(start_memory, redis_url=f"redis://127.0.0.1:{port}")
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
    assert failed.value.code is ErrorCode.INTERNAL
