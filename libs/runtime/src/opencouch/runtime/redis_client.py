"""Redis: the one way a service opens its client, with the timeouts its callers need.

A Redis that takes connections and never answers (a paused or wedged server) holds every
command until the client's socket timeout. redis-py's default for it depends on the release
(the locked 8.1 waits 5 s), and 5 s is longer than the gateway waits for memory (3 s), so the
caller gave up before the service could say what was wrong. Each service now sets the timeout
from its settings, below its callers' deadlines: a command fails within ``timeout`` as
``redis.exceptions.TimeoutError``, which the handler turns into an error reply.

A command on a connection that turns out lost (Redis restarted or failed over while it sat in
the pool) is sent once more, at once, on a fresh connection. redis-py means to retry (three
times, with backoff), but a client made ``from_url`` gets its pool's connections with no retry
at all, so after a Redis restart every pooled connection failed its next command: each service
answered ``service_unavailable`` once per connection it had. A timeout is not sent again (it
would double the wait past the caller's deadline), nor is a connection that cannot be made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

REDIS_OUTAGES: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Redis is down, unreachable or wedged: a connection refused or lost, a command past its
timeout. Not the caller's fault, and over once it is back."""


@asynccontextmanager
async def redis_client(
    url: str, *, timeout: float, connect_timeout: float | None = None
) -> AsyncIterator[Redis]:
    """A client of ``url`` whose commands (and connects) fail after ``timeout`` seconds."""
    client = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout if connect_timeout is None else connect_timeout,
        retry=Retry(NoBackoff(), 1, (redis.exceptions.ConnectionError,)),
    )
    try:
        yield client
    finally:
        await client.aclose()
