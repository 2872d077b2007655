"""The one way a NATS service runs: its endpoints, JetStream consumers and core subscriptions.

Tools, memory and finalizer each build their handlers, then hand them here; this module owns
announcing the micro service, starting the consumers and subscriptions, the health-check id
file, and a clean stop (leave the queue group, finish in-flight work, stop consuming).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from pydantic import BaseModel, ValidationError

from opencouch.runtime.endpoints import ContractService, Endpoint, start_service
from opencouch.runtime.health import write_id_file
from opencouch.runtime.jetstream import Redelivery, consume_events, ensure_events_stream
from opencouch.runtime.lifecycle import serve_until_stopped
from opencouch.runtime.messaging import flushed
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
    workers: int = 1
    """Events one replica handles at once. 1 handles them in the order they come, a batch at a
    time (a session's turns). More suits independent, slow events (a session's finalization,
    which may wait on a model): each worker fetches one at a time, so a slow one holds up no
    other, and what this replica has not fetched stays for the next free worker or replica."""


@dataclass(frozen=True)
class Subscription(Generic[EventT]):
    """A core NATS queue subscription: fire-and-forget messages nothing retains.

    For data that must leave no trace (a stream would keep it); replicas share ``queue``, so
    each message goes to one. A message that is not a valid ``model`` is dropped; an error in
    ``handle`` is logged and the message is lost, as core NATS promises no more.
    """

    subject: str
    queue: str
    model: type[EventT]
    handle: Callable[[EventT], Awaitable[None]]


@dataclass(frozen=True)
class NatsService:
    """What a NATS service announces and runs."""

    name: str
    version: str
    description: str
    endpoints: Sequence[Endpoint[Any, Any]]
    consumers: Sequence[Consumer[Any]] = ()
    subscriptions: Sequence[Subscription[Any]] = ()


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
    in_flight: set[asyncio.Task[None]] = set()
    subscribed: list[NatsSubscription] = []
    try:
        for subscription in service.subscriptions:
            subscribed.append(await _subscribe(nc, subscription, in_flight))
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
                    batch=16 if consumer.workers == 1 else 1,
                    watch_lag=worker == 0,
                ),
                name=f"consumer:{consumer.durable}:{worker}",
            )
            for consumer in service.consumers
            for worker in range(consumer.workers)
        ]
        # Ready means subscribed: the server has every endpoint and subscription above before
        # the health check can find this instance (a message sent at once would find none).
        await flushed(nc)
        write_id_file(settings.health_id_file, running.id)
        log.info("service ready", extra={"nats_service": service.name, "instance": running.id})
        # Stopped, the instance takes nothing new at once (requests go to the other replicas)
        # while its consumers finish the events they hold: staying in the queue group until
        # then, it took requests it would be killed in the middle of.
        leaving = asyncio.create_task(_leave_when_stopped(stop, running, subscribed))
        try:
            await serve_until_stopped(stop, *consumers)
        finally:
            stop.set()
            await leaving
        log.info("service stopping", extra={"nats_service": service.name})
    finally:
        await _leave(running, subscribed)
        if in_flight:
            await asyncio.wait(in_flight, timeout=10.0)
        await running.stop()


async def _leave_when_stopped(
    stop: asyncio.Event, running: ContractService, subscribed: list[NatsSubscription]
) -> None:
    await stop.wait()
    try:
        await _leave(running, subscribed)
    except Exception as error:  # NATS gone: nothing comes in anyway; the stop goes on
        log.warning("could not leave before draining", extra={"error": type(error).__name__})


async def _leave(running: ContractService, subscribed: list[NatsSubscription]) -> None:
    """Take no more requests or messages; what is in flight goes on."""
    await running.leave()
    while subscribed:
        await subscribed.pop().unsubscribe()


async def _subscribe(
    nc: NatsClient, subscription: Subscription[Any], in_flight: set[asyncio.Task[None]]
) -> NatsSubscription:
    async def handle(model: BaseModel) -> None:
        try:
            await subscription.handle(model)
        except Exception:
            log.exception("subscription handler failed", extra={"subject": subscription.subject})

    async def on_message(msg: Msg) -> None:
        try:
            model = subscription.model.model_validate_json(msg.data)
        except ValidationError:
            log.error("undecodable message dropped", extra={"subject": subscription.subject})
            return
        # Each message in its own task, as endpoints do: one slow write never queues the rest.
        task = asyncio.create_task(handle(model))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    return await nc.subscribe(subscription.subject, queue=subscription.queue, cb=on_message)
