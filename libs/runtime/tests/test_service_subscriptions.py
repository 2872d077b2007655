"""Core NATS subscriptions of a NatsService: each valid message handled once by one replica,
bad messages and failing handlers dropped without stopping the service."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import ClassVar

import nats

from opencouch.contracts.common import Contract
from opencouch.runtime.messaging import flushed
from opencouch.runtime.service import NatsService, Subscription, run_nats_service
from opencouch.runtime.settings import NatsServiceSettings


class Ping(Contract):
    n: int


class PingSettings(NatsServiceSettings):
    service_name: ClassVar[str] = "ping"


async def test_a_queue_subscription_survives_bad_messages_and_failing_handlers(
    nats_url: str, tmp_path: Path
) -> None:
    subject = f"test.ping.{uuid.uuid4().hex}"
    handled: list[int] = []

    async def handle(ping: Ping) -> None:
        if ping.n == 13:
            raise RuntimeError("unlucky")
        handled.append(ping.n)

    def replica(name: str) -> NatsService:
        return NatsService(
            name=f"ping-{name}",
            version="0.0.1",
            description="test",
            endpoints=[],
            subscriptions=[Subscription(subject, f"q-{subject}", Ping, handle)],
        )

    service_nc = [await nats.connect(nats_url) for _ in range(2)]
    stop = asyncio.Event()
    runners = [
        asyncio.create_task(
            run_nats_service(
                nc, replica(str(index)), PingSettings(id_file=tmp_path / f"{index}.id"), stop
            )
        )
        for index, nc in enumerate(service_nc)
    ]
    client = await nats.connect(nats_url)
    try:
        for _ in range(100):
            if all((tmp_path / f"{index}.id").exists() for index in range(2)):
                break
            await asyncio.sleep(0.05)
        for payload in (b'{"n": 1}', b"not json", b'{"n": 13}', b'{"n": "x"}', b'{"n": 2}'):
            await client.publish(subject, payload)
        await flushed(client)
        for _ in range(100):
            if len(handled) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*runners)
        await client.close()
        for nc in service_nc:
            await nc.close()
    # Two replicas in one queue group: each message handled exactly once.
    assert sorted(handled) == [1, 2]
    assert all(runner.exception() is None for runner in runners)
