"""The command batcher on a real Redis: concurrent commands share one pipeline, and each caller
still gets its own reply or its own error, as if it had sent its command alone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis

from opencouch.testing.servers import free_port
from opencouch.voice_gateway.redis_batching import CommandBatcher


class PipelineCount:
    """Counts the pipelines a client opens (the batcher's one call into redis-py per batch)."""

    def __init__(self, client: Redis) -> None:
        self.opened = 0
        original = client.pipeline

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.opened += 1
            return original(*args, **kwargs)

        client.pipeline = counting  # type: ignore[method-assign]


async def test_concurrent_commands_go_out_as_one_pipeline_and_each_gets_its_reply(
    redis_url: str,
) -> None:
    client = Redis.from_url(redis_url)
    pipelines = PipelineCount(client)
    batcher = CommandBatcher(client)
    key = f"test:batch:{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(batcher.execute("INCR", key) for _ in range(20)))
        assert sorted(replies) == list(range(1, 21))  # each caller its own INCR's reply
        assert pipelines.opened == 1
        # A lone command is sent as it is, with no pipeline around it.
        assert await batcher.execute("INCR", key) == 21
        assert pipelines.opened == 1
    finally:
        await client.delete(key)
        await client.aclose()


async def test_an_error_reaches_only_the_caller_whose_command_failed(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    batcher = CommandBatcher(client)
    counter, text = f"test:batch:{uuid.uuid4().hex}", f"test:batch:{uuid.uuid4().hex}"
    await client.set(text, "not a number")
    try:
        replies = await asyncio.gather(
            batcher.execute("INCR", counter),
            batcher.execute("INCR", text),
            batcher.execute("INCR", counter),
            return_exceptions=True,
        )
        assert isinstance(replies[1], redis.exceptions.ResponseError)
        assert sorted(r for r in replies if isinstance(r, int)) == [1, 2]
    finally:
        await client.delete(counter, text)
        await client.aclose()


async def test_a_script_redis_does_not_hold_is_loaded_and_run(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    batcher = CommandBatcher(client)
    # A script no Redis has seen (as after a restart): EVALSHA answers NOSCRIPT first.
    script = client.register_script(f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) + 1")
    try:
        replies = await asyncio.gather(*(batcher.run_script(script, [], [n]) for n in range(5)))
        assert replies == [1, 2, 3, 4, 5]
    finally:
        await client.aclose()


async def test_an_unreachable_redis_fails_every_caller_of_the_batch() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    batcher = CommandBatcher(client)
    try:
        replies = await asyncio.gather(
            *(batcher.execute("GET", "x") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, redis.exceptions.ConnectionError) for r in replies), replies
        with pytest.raises(redis.exceptions.ConnectionError):
            await batcher.execute("GET", "x")
    finally:
        await client.aclose()


async def test_a_command_goes_out_on_the_next_turn_of_the_loop(redis_url: str) -> None:
    # A pure tool's claim must reach Redis while the tool is being asked, not after its answer:
    # one turn of the loop to gather the batch, and the next batch is on its way.
    client = Redis.from_url(redis_url)
    sent: list[tuple[Any, ...]] = []
    original = client.execute_command

    async def recording(*args: Any, **options: Any) -> Any:
        sent.append(args)
        return await original(*args, **options)  # type: ignore[no-untyped-call]

    client.execute_command = recording  # type: ignore[method-assign]
    batcher = CommandBatcher(client)
    try:
        reply = asyncio.ensure_future(batcher.execute("PING"))
        await asyncio.sleep(0)  # the caller's task issues the command
        await asyncio.sleep(0)  # the batch is sent
        assert sent == [("PING",)]
        assert await reply is True
    finally:
        await client.aclose()
