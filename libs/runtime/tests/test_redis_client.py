"""redis_client: a Redis that takes connections and never answers fails a command in time, and
one that restarted is used again at once."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from opencouch.runtime.redis_client import redis_client
from opencouch.testing.infra import PrivateRedis
from opencouch.testing.servers import free_port, silent_port


async def test_a_redis_that_never_answers_fails_the_command_instead_of_hanging() -> None:
    with silent_port() as port:
        async with redis_client(f"redis://127.0.0.1:{port}", timeout=0.3) as client:
            # Not redis-py's default (5 s in 8.1, none in some releases): the outer 30 s is a guard.
            with pytest.raises(redis.exceptions.TimeoutError):
                await asyncio.wait_for(client.ping(), 30)


async def test_commands_run_and_the_connection_is_closed_on_exit(redis_url: str) -> None:
    async with redis_client(redis_url, timeout=5) as client:
        ours = await client.client_id()
    async with redis_client(redis_url, timeout=5) as other:
        for _ in range(100):  # Redis sees the close when it next reads the socket
            left = [entry for entry in await other.client_list() if int(entry["id"]) == ours]
            if not left:
                break
            await asyncio.sleep(0.05)
    assert left == []


async def test_a_restarted_redis_is_used_again_on_the_first_command(
    restartable_redis: PrivateRedis,
) -> None:
    # Every pooled connection is lost with the server; the first command on each one after the
    # restart goes out again on a fresh connection instead of failing.
    restartable_redis.start()
    async with redis_client(restartable_redis.url, timeout=2) as client:
        await asyncio.gather(*(client.set(f"k{n}", n) for n in range(4)))  # a few connections
        restartable_redis.kill()
        restartable_redis.start()
        assert await asyncio.gather(*(client.set(f"k{n}", n) for n in range(4))) == [True] * 4


async def test_a_redis_that_is_down_fails_at_once() -> None:
    async with redis_client(f"redis://127.0.0.1:{free_port()}", timeout=2) as client:
        with pytest.raises(redis.exceptions.ConnectionError):
            await asyncio.wait_for(client.ping(), 10)
