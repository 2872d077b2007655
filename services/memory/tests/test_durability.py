"""No acknowledged turn is ever lost: not when the consumer is killed mid-stream, and not when
Postgres is down for longer than the retry window (the turns wait as dead letters and replay).

Each test runs ``python -m opencouch.memory`` as a real process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import nats
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnRecorded
from opencouch.memory.testing import Conversation, MemoryClient, eventually
from opencouch.runtime.jetstream import dead_letters, ensure_events_stream
from opencouch.testing.processes import ServiceProcess

StartMemory = Callable[..., ServiceProcess]


@pytest.fixture
async def client(nats_url: str, migrated: str) -> AsyncIterator[MemoryClient]:
    nc = await nats.connect(nats_url)
    try:
        yield MemoryClient(nc, await ensure_events_stream(nc), migrated)
    finally:
        await nc.close()


def stored_turn_ids(client: MemoryClient, session_id: str) -> list[str]:
    return [
        row[0]
        for row in client.rows(
            "SELECT client_turn_id FROM memory.turns WHERE session_id = %s", session_id
        )
    ]


async def test_killing_the_consumer_mid_stream_loses_nothing_and_doubles_nothing(
    client: MemoryClient, start_memory: StartMemory
) -> None:
    conversation = Conversation()
    memory = start_memory()
    turns = [conversation.turn(f"line {n}") for n in range(300)]
    for turn in turns:
        await client.publish(turn)

    async def some_stored() -> bool:
        return bool(stored_turn_ids(client, conversation.session_id))

    await eventually(some_stored)
    memory.process.send_signal(signal.SIGKILL)
    memory.process.wait(30)
    start_memory()

    await client.stored(conversation.session_id, len(turns), timeout=120)
    ids = stored_turn_ids(client, conversation.session_id)
    assert sorted(ids) == sorted(turn.client_turn_id for turn in turns)


class PostgresProxy:
    """A TCP hop to Postgres that can fail like an outage: existing connections drop and new
    ones are refused, for this proxy's users only (the shared server keeps running)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}


async def test_turns_outlasting_a_postgres_outage_wait_as_dead_letters_and_replay_once(
    client: MemoryClient,
    start_memory: StartMemory,
    migrated: str,
    nats_url: str,
    redis_url: str,
) -> None:
    parts = urlsplit(migrated)
    proxy = PostgresProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    through_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    # In a thread: the proxy runs on this event loop, and the service migrates through it.
    await asyncio.to_thread(
        start_memory,
        database_url=through_proxy,
        turn_max_deliveries="2",
        turn_retry_first_delay_seconds="0.2",
        turn_retry_max_delay_seconds="0.5",
        db_timeout_seconds="1",
    )
    conversation = Conversation()
    turns = [conversation.turn(f"said while the database was away {n}") for n in range(5)]
    try:
        await proxy.cut()
        for turn in turns:
            await client.publish(turn)

        async def all_dead() -> bool:
            ours = [
                TurnRecorded.model_validate_json(letter.data).session_id
                async for letter in dead_letters(client.js, subjects.MEMORY_TURNS_CONSUMER)
            ]
            return ours.count(conversation.session_id) == len(turns)

        await eventually(all_dead, timeout=120)
        assert stored_turn_ids(client, conversation.session_id) == []
    finally:
        await proxy.start()

    def replay(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opencouch.memory.replay_dead_letters", *flags],
            env={
                **os.environ,
                "MEMORY_NATS_URL": nats_url,
                "MEMORY_DATABASE_URL": migrated,
                "MEMORY_REDIS_URL": redis_url,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    replayed = replay()
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    report = json.loads(replayed.stdout.strip().splitlines()[-1])
    assert report[subjects.MEMORY_TURNS_CONSUMER]["replayed"] >= len(turns)
    assert report[subjects.MEMORY_TURNS_CONSUMER]["waiting"] == 0
    assert sorted(stored_turn_ids(client, conversation.session_id)) == sorted(
        turn.client_turn_id for turn in turns
    )

    counted = replay("--count-only")
    assert counted.returncode == 0
    assert json.loads(counted.stdout.strip().splitlines()[-1]) == {
        subjects.MEMORY_TURNS_CONSUMER: {"waiting": 0},
        subjects.MEMORY_CLASSIFICATIONS_CONSUMER: {"waiting": 0},
    }
