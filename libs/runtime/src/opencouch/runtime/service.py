"""The one way a NATS service runs: its endpoints and its JetStream consumers, until SIGTERM.

Tools, memory and finalizer each build their handlers, then hand them here; this module owns
announcing the micro service, starting the consumers, the health-check id file, and a clean
stop (leave the queue group, finish in-flight work, stop consuming).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel

from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.health import write_id_file
from opencouch.runtime.jetstream import Redelivery, consume_events, ensure_events_stream
from opencouch.runtime.lifecycle import serve_until_stopped
from opencouch.runtime.settings import NatsServiceSettings

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)


@dataclass(frozen=True)
class Consumer(Generic[EventT]):
    """A durable JetStream consumer: replicas share ``durable``, so each event goes to one."""

    durable: str
    subject: str
    event_model: type[EventT]
    handle: Callable[[EventT], Awaitable[None]]
    on_give_up: Callable[[EventT], Awaitable[None]] | None = None
    redelivery: Redelivery = field(default_factory=Redelivery)


@dataclass(frozen=True)
class NatsService:
    """What a NATS service announces and runs."""

    name: str
    version: str
    description: str
    endpoints: Sequence[Endpoint[Any, Any]]
    consumers: Sequence[Consumer[Any]] = ()


async def run_nats_service(
    nc: NatsClient, service: NatsService, settings: NatsServiceSettings, stop: asyncio.Event
) -> None:
    """Serve ``service`` on ``nc`` until ``stop`` is set (or a consumer dies, which re-raises)."""
    js = await ensure_events_stream(nc)
    running = await start_service(
        nc,
        name=service.name,
        version=service.version,
        description=service.description,
        endpoints=service.endpoints,
        max_concurrency=settings.max_concurrency,
    )
    try:
        consumers = [
            asyncio.create_task(
                consume_events(
                    js,
                    subject=consumer.subject,
                    durable=consumer.durable,
                    event_model=consumer.event_model,
                    handle=consumer.handle,
                    on_give_up=consumer.on_give_up,
                    stop=stop,
                    redelivery=consumer.redelivery,
                ),
                name=f"consumer:{consumer.durable}",
            )
            for consumer in service.consumers
        ]
        write_id_file(settings.health_id_file, running.id)
        log.info("service ready", extra={"service": service.name, "instance": running.id})
        await serve_until_stopped(stop, *consumers)
        log.info("service stopping", extra={"service": service.name})
    finally:
        await running.stop()
