"""The events stream: declaring it, publishing contracts to it, consuming them exactly once.

Delivery is at-least-once; consumers make their writes idempotent, and publishers send a
``Nats-Msg-Id`` so a retried publish inside the duplicate window is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from pydantic import BaseModel, ValidationError

from opencouch.contracts import subjects
from opencouch.runtime.observation import observed_handler, publishing

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)

EVENTS_STREAM_CONFIG = StreamConfig(
    name=subjects.EVENTS_STREAM,
    subjects=[f"{subjects.EVENTS_PREFIX}.>"],
    storage=StorageType.FILE,
    duplicate_window=120.0,
    # Consumers ack within seconds; a month is room for an outage, not an archive.
    max_age=30 * 24 * 3600.0,
)


class RetryLater(Exception):
    """Raised by a consumer's handler: not yet, deliver this message again after ``delay``."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


async def ensure_events_stream(nc: NatsClient) -> JetStreamContext:
    """Create (or align) the events stream; every publisher and consumer may call it."""
    js = nc.jetstream()
    try:
        await js.add_stream(EVENTS_STREAM_CONFIG)
    except nats.js.errors.BadRequestError:
        # Exists with another config (an older deploy): bring it to this one.
        await js.update_stream(EVENTS_STREAM_CONFIG)
    return js


async def publish_event(
    js: JetStreamContext, subject: str, event: BaseModel, *, dedup_id: str, timeout: float = 5.0
) -> int:
    """Publish ``event`` and return its stream sequence once JetStream has stored it."""
    data = event.model_dump_json().encode()
    with publishing(subject, type(event).__name__, {"Nats-Msg-Id": dedup_id}, len(data)) as headers:
        ack = await js.publish(
            subject, data, timeout=timeout, stream=subjects.EVENTS_STREAM, headers=headers
        )
    return ack.seq


async def consume_events(
    js: JetStreamContext,
    *,
    subject: str,
    durable: str,
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
    stop: asyncio.Event,
    on_give_up: Callable[[EventT], Awaitable[None]] | None = None,
    ack_wait: float = 30.0,
    max_deliver: int = 50,
    batch: int = 16,
) -> None:
    """Feed each event on ``subject`` to ``handle`` until ``stop`` is set.

    Ack after ``handle`` returns; ``RetryLater`` or an unexpected error asks for redelivery
    later, up to ``max_deliver`` deliveries, after which ``on_give_up`` is told and the message
    is terminated; a message that is not a valid ``event_model`` is terminated at once.
    Replicas share ``durable``, so each message goes to one of them.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        filter_subject=subject,
    )
    sub = await js.pull_subscribe(
        subject, durable=durable, stream=subjects.EVENTS_STREAM, config=config
    )
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):  # nothing to fetch this second
                continue
            for msg in msgs:
                await _deliver(msg, event_model, handle, on_give_up, durable, max_deliver)
    finally:
        await sub.unsubscribe()


async def _deliver(
    msg: Msg,
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
    on_give_up: Callable[[EventT], Awaitable[None]] | None,
    durable: str,
    max_deliver: int,
) -> None:
    handle = observed_handler(msg, durable, handle)  # the delivery's trace, lag and outcome
    try:
        event = event_model.model_validate_json(msg.data)
    except ValidationError:
        log.error("undecodable event terminated", extra={"consumer": durable})
        await msg.term()
        return
    attempt = msg.metadata.num_delivered
    try:
        await handle(event)
    except Exception as error:
        if isinstance(error, RetryLater):
            log.info("event deferred", extra={"consumer": durable, "reason": str(error)})
            delay = error.delay
        else:
            log.exception("event handling failed", extra={"consumer": durable, "attempt": attempt})
            delay = min(2.0 ** min(attempt, 5), 30.0)
        if attempt < max_deliver:
            await msg.nak(delay=delay)
            return
        log.error("event given up", extra={"consumer": durable, "attempts": attempt})
        if on_give_up is not None:
            await on_give_up(event)
        await msg.term()
        return
    await msg.ack_sync()
