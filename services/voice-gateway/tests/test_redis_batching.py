"""The command batcher on a real Redis: concurrent commands go out together on its held
connection, and each caller still gets its own reply or its own error, as if it had sent its
command alone."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis

from opencouch.testing.infra import PrivateRedis
from opencouch.testing.servers import free_port
from opencouch.voice_gateway.redis_batching import CommandBatcher


class Writes:
    """Records what the client's connections write (the batcher writes once per batch)."""

    def __init__(self, client: Redis) -> None:
        self.sent: list[bytes] = []
        pool = client.connection_pool
        original = pool.get_connection

        async def recording(*args: Any, **kwargs: Any) -> Any:
            connection = await original(*args, **kwargs)  # type: ignore[no-untyped-call]
            send = connection.send_packed_command

            async def sending(command: Any, *more: Any, **options: Any) -> None:
                self.sent.append(command if isinstance(command, bytes) else b"".join(command))
                await send(command, *more, **options)

            connection.send_packed_command = sending
            return connection

        pool.get_connection = recording  # type: ignore[method-assign]


@dataclass(frozen=True)
class Batching:
    """A batcher on a fresh client whose writes are recorded, and a key of the test's own."""

    client: Redis
    writes: Writes
    batcher: CommandBatcher
    key: str


@pytest.fixture
async def batching(redis_url: str) -> AsyncIterator[Batching]:
    client = Redis.from_url(redis_url)
    # Recording from before the batcher checks its connection out of the pool.
    setup = Batching(
        client, Writes(client), CommandBatcher(client), f"test:batch:{uuid.uuid4().hex}"
    )
    yield setup
    await client.delete(setup.key)
    await client.aclose()


async def test_concurrent_commands_go_out_as_one_write_and_each_gets_its_reply(
    batching: Batching,
) -> None:
    batcher, key, sent = batching.batcher, batching.key, batching.writes.sent
    replies = await asyncio.gather(*(batcher.execute("INCR", key) for _ in range(20)))
    assert sorted(replies) == list(range(1, 21))  # each caller its own INCR's reply
    assert len(sent) == 1
    assert sent[0].count(b"INCR") == 20
    # A lone command goes out on the same connection, as Redis's reply says it.
    assert await batcher.execute("INCR", key) == 21
    assert await batcher.execute("SET", key, "x") == b"OK"
    assert len(sent) == 3


async def test_commands_issued_while_a_batch_is_out_go_in_the_next_one(batching: Batching) -> None:
    batcher, key = batching.batcher, batching.key
    first = asyncio.ensure_future(batcher.execute("INCR", key))
    await asyncio.sleep(0)  # the first batch goes out, alone
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(batcher.execute("INCR", key)) for _ in range(5)]
    assert sorted(await asyncio.gather(first, *later)) == [1, 2, 3, 4, 5, 6]
    assert [w.count(b"INCR") for w in batching.writes.sent] == [1, 5]


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


async def test_a_command_goes_out_on_the_next_turn_of_the_loop(batching: Batching) -> None:
    # A pure tool's claim must reach Redis while the tool is being asked, not after its answer:
    # one turn of the loop to gather the batch, and the next batch is on its way.
    batcher = batching.batcher
    assert await batcher.execute("PING") == b"PONG"  # connected
    reply = asyncio.ensure_future(batcher.execute("PING"))
    await asyncio.sleep(0)  # the caller's task issues the command
    await asyncio.sleep(0)  # the batch is sent
    assert len(batching.writes.sent) == 2
    assert await reply == b"PONG"


async def test_a_restarted_redis_is_reconnected_to_and_its_lost_script_loaded(
    restartable_redis: PrivateRedis,
) -> None:
    # The held connection dies with its server; the next batch finds it closed, connects again,
    # and a script the new server never saw is loaded and run.
    restartable_redis.start()
    client = Redis.from_url(restartable_redis.url, socket_timeout=2)
    batcher = CommandBatcher(client)
    script = client.register_script(f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) * 2")
    try:
        assert await batcher.run_script(script, [], [21]) == 42
        restartable_redis.kill()
        restartable_redis.start()
        assert await batcher.run_script(script, [], [4]) == 8
        assert await batcher.execute("SET", "k", "v") == b"OK"
    finally:
        await client.aclose()


async def test_a_redis_that_stops_answering_fails_the_batch_within_the_timeout(
    restartable_redis: PrivateRedis,
) -> None:
    # A paused server takes the write and never replies: every caller gets redis-py's timeout
    # (what the gateway answers 503 for), and once it answers again so does the batcher.
    restartable_redis.start()
    client = Redis.from_url(restartable_redis.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    batcher = CommandBatcher(client)
    pid = restartable_redis.pid
    assert pid is not None
    try:
        assert await batcher.execute("PING") == b"PONG"
        os.kill(pid, signal.SIGSTOP)
        try:
            replies = await asyncio.wait_for(
                asyncio.gather(*(batcher.execute("GET", "x") for _ in range(3)),
                               return_exceptions=True),
                timeout=10,
            )  # fmt: skip
        finally:
            os.kill(pid, signal.SIGCONT)
        assert all(isinstance(r, redis.exceptions.TimeoutError) for r in replies), replies
        assert await batcher.execute("PING") == b"PONG"
    finally:
        await client.aclose()
