"""Core NATS subscriptions of a NatsService: each valid message handled once by one replica,
bad messages and failing handlers dropped without stopping the service."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import ClassVar

import nats
import nats.errors
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.common import Contract
from opencouch.runtime.endpoints import Endpoint
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.messaging import flushed
from opencouch.runtime.service import Consumer, NatsService, Subscription, run_nats_service
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


async def test_a_stopped_service_takes_no_new_request_while_its_consumer_drains(
    nats_url: str, tmp_path: Path
) -> None:
    """SIGTERM while a consumer held an event: the instance stayed in the queue group until the
    event was done, took requests meant for the other replicas, and was killed in their middle
    (compose gives 10 s)."""
    tag = uuid.uuid4().hex[:8]
    subject = f"{subjects.EVENTS_PREFIX}.drain{tag}"
    asked = f"test.drain{tag}.ping"
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(_: Ping) -> None:
        holding.set()
        await release.wait()

    async def answer(ping: Ping) -> Ping:
        return Ping(n=ping.n + 1)

    service = NatsService(
        name=f"drain{tag}",
        version="0.0.1",
        description="test",
        endpoints=[Endpoint("ping", asked, Ping, answer)],
        consumers=[Consumer(f"drain{tag}", subject, Ping, hold)],
    )
    service_nc, client = await nats.connect(nats_url), await nats.connect(nats_url)
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_nats_service(service_nc, service, PingSettings(id_file=tmp_path / "id"), stop)
    )
    try:
        js = await ensure_events_stream(client)
        await js.publish(subject, Ping(n=1).model_dump_json().encode())
        await asyncio.wait_for(holding.wait(), 10)
        assert (await client.request(asked, b'{"n": 1}', timeout=2)).data == b'{"n":2}'
        stop.set()  # what SIGTERM does
        await asyncio.sleep(0.5)
        with pytest.raises(nats.errors.NoRespondersError):
            await client.request(asked, b'{"n": 41}', timeout=2)
        assert not runner.done()  # the event it holds is still being handled
    finally:
        release.set()
        await asyncio.wait_for(runner, 30)
        await js.delete_consumer(subjects.EVENTS_STREAM, f"drain{tag}")
        await client.close()
        await service_nc.close()
