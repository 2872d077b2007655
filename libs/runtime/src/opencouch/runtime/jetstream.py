"""The events stream: declaring it, publishing contracts to it, consuming them exactly once.

Delivery is at-least-once; consumers make their writes idempotent, and publishers send a
``Nats-Msg-Id`` so a retried publish inside the duplicate window is stored once.

An acknowledged event is never dropped. One that a consumer cannot handle, after its last
retry (or at once, when it is no valid event), is copied to the dead-letter stream, which keeps
it with no age limit, and only then acknowledged; ``replay_dead_letters`` hands it to the
handler again once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)
from pydantic import BaseModel

from opencouch.contracts import subjects
from opencouch.runtime import metrics
from opencouch.runtime.observation import observed_handler, publishing

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=BaseModel)

EVENTS_STREAM_CONFIG = StreamConfig(
    name=subjects.EVENTS_STREAM,
    subjects=[f"{subjects.EVENTS_PREFIX}.>"],
    storage=StorageType.FILE,
    duplicate_window=120.0,
    # Consumers ack within seconds; a month is room for an outage, not an archive. Turn text
    # goes sooner: ``purge_acknowledged`` removes what every reader has acknowledged.
    max_age=30 * 24 * 3600.0,
)

DEAD_LETTERS_STREAM_CONFIG = StreamConfig(
    name=subjects.DEAD_LETTERS_STREAM,
    subjects=[f"{subjects.DEAD_LETTERS_PREFIX}.>"],
    storage=StorageType.FILE,
    duplicate_window=120.0,
    # No age limit: a dead letter is kept until it is replayed (or erased).
)

# Headers a dead letter carries besides the original payload.
ORIGINAL_SUBJECT: Final = "Opencouch-Original-Subject"
ORIGINAL_SEQUENCE: Final = "Opencouch-Original-Sequence"
DEAD_REASON: Final = "Opencouch-Dead-Reason"
DEAD_ATTEMPTS: Final = "Opencouch-Dead-Attempts"
DEAD_AT: Final = "Opencouch-Dead-At"

_NATS_FAILURES = (nats.errors.Error, TimeoutError)
_SETTLE_TIMEOUT = 5.0
_ALREADY_GONE = frozenset({10043, 10057})  # "sequence not found", "no message found"


class RetryLater(Exception):
    """Raised by a consumer's handler: not yet, deliver this message again after ``delay``."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


class GiveUp(Exception):
    """Raised by a consumer's handler: this event can never be handled, whatever the retries.

    The consumer gives up at once, as after its last attempt: ``on_give_up``, then the dead
    letters. The message is a reason code for the logs, never user text.
    """


async def ensure_events_stream(nc: NatsClient) -> JetStreamContext:
    """Create (or align) the events and dead-letter streams; anyone may call it."""
    js = nc.jetstream()
    for config in (EVENTS_STREAM_CONFIG, DEAD_LETTERS_STREAM_CONFIG):
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Exists with another config (an older deploy): bring it to this one.
            await js.update_stream(config)
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


@dataclass(frozen=True)
class Redelivery:
    """How a consumer retries an event its handler could not handle yet.

    Attempt ``n`` waits ``min(first_delay * 2 ** (n - 1), max_delay)`` (or a ``RetryLater``'s
    own delay); after ``max_deliver`` attempts the event goes to the dead letters.
    """

    max_deliver: int = 50
    first_delay: float = 1.0
    max_delay: float = 30.0
    ack_wait: float = 30.0
    """How long JetStream waits for an ack; a handler still working renews it."""
    handle_timeout: float = 120.0
    """A handler running longer than this counts as failed, so nothing is held forever."""

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``."""
        return min(self.first_delay * 2.0 ** min(max(attempt - 1, 0), 16), self.max_delay)

    @property
    def horizon(self) -> float:
        """Seconds the retries of one failing event span at least: every wait between attempts.

        Whoever waits on this consumer's work should wait at least this long.
        """
        return sum(self.delay(attempt) for attempt in range(1, self.max_deliver))


async def consume_events(
    js: JetStreamContext,
    *,
    subject: str,
    durable: str,
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
    stop: asyncio.Event,
    on_give_up: Callable[[EventT], Awaitable[None]] | None = None,
    redelivery: Redelivery | None = None,
    batch: int = 16,
    watch_lag: bool = True,
) -> None:
    """Feed each event on ``subject`` to ``handle`` until ``stop`` is set.

    Ack after ``handle`` returns. ``RetryLater`` or an error asks for redelivery later; after
    ``redelivery.max_deliver`` attempts ``on_give_up`` is told and the event is moved to the
    dead letters. A message that is no valid ``event_model`` is moved there at once. While a
    batch is worked through, every message still waiting is kept in progress, so none is
    redelivered to another replica meanwhile. NATS errors are logged and retried, never fatal.
    Replicas share ``durable``, so each message goes to one of them. Several loops may share
    it in one process too (``batch`` 1 each, one of them ``watch_lag``): each event is then
    one loop's, and a slow one holds up no other.
    """
    policy = redelivery or Redelivery()
    sub = await _subscribe(js, subject, durable, policy)
    watching = asyncio.create_task(_watch_lag(js, durable, stop) if watch_lag else stop.wait())
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):  # nothing to fetch this second
                continue
            except nats.js.errors.NotFoundError:
                log.warning("consumer missing; creating it again", extra={"consumer": durable})
                await _pause(stop, 1.0)
                with contextlib.suppress(*_NATS_FAILURES):
                    await sub.unsubscribe()
                sub = await _subscribe_when_possible(js, subject, durable, policy, stop)
                continue
            except nats.errors.Error as error:  # reconnecting, slow server: try again shortly
                log.warning(
                    "fetch failed", extra={"consumer": durable, "error": type(error).__name__}
                )
                await _pause(stop, 1.0)
                continue
            await _work_through(js, msgs, event_model, handle, on_give_up, durable, policy, stop)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        with contextlib.suppress(*_NATS_FAILURES):
            await sub.unsubscribe()


LAG_EVERY_SECONDS = 5.0
"""How often a consumer reads its lag from the server, besides at each delivery."""


async def _watch_lag(js: JetStreamContext, durable: str, stop: asyncio.Event) -> None:
    """Keep the consumer's lag metric current from the server, not only as deliveries start:
    while a handler is stuck or slow, events pile up, and a lag read at the last delivery would
    show none of them."""
    while not stop.is_set():
        try:
            info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
        except _NATS_FAILURES:
            pass  # NATS away: the next look may do
        else:
            metrics.JETSTREAM_PENDING.labels(durable).set(info.num_pending or 0)
        await _pause(stop, LAG_EVERY_SECONDS)


async def _subscribe(
    js: JetStreamContext, subject: str, durable: str, policy: Redelivery
) -> JetStreamContext.PullSubscription:
    config = ConsumerConfig(
        name=durable,
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=policy.ack_wait,
        # Unlimited on the server: this side counts attempts and dead-letters the last one, so
        # a message is never left undeliverable if storing its dead letter fails.
        max_deliver=-1,
        filter_subject=subject,
    )
    # Create, or bring an existing durable to this config (ack wait, delivery limit).
    await js.add_consumer(subjects.EVENTS_STREAM, config)
    return await js.pull_subscribe_bind(durable=durable, stream=subjects.EVENTS_STREAM)


async def _subscribe_when_possible(
    js: JetStreamContext, subject: str, durable: str, policy: Redelivery, stop: asyncio.Event
) -> JetStreamContext.PullSubscription:
    while True:
        try:
            return await _subscribe(js, subject, durable, policy)
        except _NATS_FAILURES as error:
            if stop.is_set():
                raise
            log.warning(
                "consumer not created yet",
                extra={"consumer": durable, "error": type(error).__name__},
            )
            await _pause(stop, 2.0)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _work_through(
    js: JetStreamContext,
    msgs: list[Msg],
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
    on_give_up: Callable[[EventT], Awaitable[None]] | None,
    durable: str,
    policy: Redelivery,
    stop: asyncio.Event,
) -> None:
    """Handle a fetched batch in order, renewing the ack wait of every message not done yet."""
    waiting = list(msgs)
    keeper = asyncio.create_task(_keep_in_progress(waiting, policy.ack_wait))
    try:
        while waiting and not stop.is_set():
            await _deliver(js, waiting[0], event_model, handle, on_give_up, durable, policy)
            waiting.pop(0)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        # Stopping: hand the rest back now rather than after the ack wait.
        for msg in waiting:
            await _settle(msg.nak(), "nak", durable)


async def _keep_in_progress(waiting: list[Msg], ack_wait: float) -> None:
    while True:
        await asyncio.sleep(ack_wait / 3)
        for msg in list(waiting):
            with contextlib.suppress(*_NATS_FAILURES):
                await msg.in_progress()


async def _deliver(
    js: JetStreamContext,
    msg: Msg,
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
    on_give_up: Callable[[EventT], Awaitable[None]] | None,
    durable: str,
    policy: Redelivery,
) -> None:
    handle = observed_handler(msg, durable, handle)  # the delivery's trace, lag and outcome
    attempt = msg.metadata.num_delivered
    try:
        event = event_model.model_validate_json(msg.data)
    except ValueError:  # pydantic's ValidationError; its text may quote the payload: not logged
        await _move_to_dead_letters(js, msg, durable, "undecodable", attempt, policy)
        return
    try:
        async with asyncio.timeout(policy.handle_timeout):
            await handle(event)
    except Exception as error:
        if isinstance(error, RetryLater):
            log.info("event deferred", extra={"consumer": durable, "reason": str(error)})
            delay = error.delay
        elif isinstance(error, GiveUp):
            log.error("event cannot be handled", extra={"consumer": durable, "reason": str(error)})
            delay = 0.0
        else:
            # No exception text: a database error can quote the row, and rows hold user words.
            log.error(
                "event handling failed",
                extra={
                    "consumer": durable,
                    "attempt": attempt,
                    "error": type(error).__name__,
                    "at": _raised_at(error),
                },
            )
            delay = policy.delay(attempt)
        if attempt < policy.max_deliver and not isinstance(error, GiveUp):
            await _settle(msg.nak(delay=delay), "nak", durable)
            return
        log.error("event given up", extra={"consumer": durable, "attempts": attempt})
        if on_give_up is not None:
            try:
                await on_give_up(event)
            except Exception as failure:
                log.error(
                    "give-up handler failed",
                    extra={"consumer": durable, "error": type(failure).__name__},
                )
        reason = "given_up" if isinstance(error, GiveUp) else "retries_exhausted"
        await _move_to_dead_letters(js, msg, durable, reason, attempt, policy)
        return
    await _settle(msg.ack_sync(timeout=_SETTLE_TIMEOUT), "ack", durable)


def _raised_at(error: BaseException) -> str:
    """Where ``error`` was raised (file:line in function): enough to debug, no values."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


async def _settle(action: Awaitable[object], what: str, durable: str) -> None:
    """Ack, nak or term; a failure only means the message comes back after its ack wait."""
    try:
        await action
    except _NATS_FAILURES as error:
        log.warning(
            f"{what} failed; the message will be redelivered",
            extra={"consumer": durable, "error": type(error).__name__},
        )


async def _move_to_dead_letters(
    js: JetStreamContext, msg: Msg, durable: str, reason: str, attempts: int, policy: Redelivery
) -> None:
    """Keep ``msg`` in the dead letters, then ack it; if that fails, it comes back later."""
    sequence = msg.metadata.sequence.stream
    try:
        await js.publish(
            subjects.dead_letters(durable),
            msg.data,
            timeout=_SETTLE_TIMEOUT,
            stream=subjects.DEAD_LETTERS_STREAM,
            headers={
                "Nats-Msg-Id": f"dead:{durable}:{sequence}",
                ORIGINAL_SUBJECT: msg.subject,
                ORIGINAL_SEQUENCE: str(sequence),
                DEAD_REASON: reason,
                DEAD_ATTEMPTS: str(attempts),
                DEAD_AT: datetime.now(UTC).isoformat(),
            },
        )
    except _NATS_FAILURES as error:
        log.error(
            "dead letter not stored; the event is kept for another try",
            extra={"consumer": durable, "error": type(error).__name__},
        )
        await _settle(msg.nak(delay=policy.max_delay), "nak", durable)
        return
    await _settle(msg.term(), "term", durable)
    waiting = None
    with contextlib.suppress(*_NATS_FAILURES):
        waiting = await count_dead_letters(js, durable)
    log.error(
        "event moved to the dead letters",
        extra={"consumer": durable, "reason": reason, "attempts": attempts, "waiting": waiting},
    )


# -- dead letters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """An event kept in the dead letters, with where it came from and why it is there."""

    sequence: int
    """Its sequence in the dead-letter stream."""
    data: bytes
    original_subject: str
    original_sequence: int | None
    reason: str
    attempts: int


@dataclass(frozen=True)
class ReplayReport:
    """What one replay did: handled and removed, failed again (kept), and still waiting."""

    replayed: int
    failed: int
    waiting: int


async def count_dead_letters(js: JetStreamContext, durable: str) -> int:
    """How many dead letters of ``durable`` are waiting."""
    subject = subjects.dead_letters(durable)
    info = await js.stream_info(subjects.DEAD_LETTERS_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def stored_messages(
    js: JetStreamContext, stream: str, subject: str
) -> AsyncIterator[tuple[int, bytes, dict[str, str]]]:
    """Every message of ``stream`` on ``subject`` (wildcards allowed), oldest first:
    its sequence, payload and headers. One request per message: for small or purged subjects.
    """
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(stream, seq=sequence, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return
        assert raw.seq is not None  # a stored message always has its sequence
        yield raw.seq, raw.data or b"", dict(raw.headers or {})
        sequence = raw.seq + 1


async def stored_events(js: JetStreamContext, subject: str) -> AsyncIterator[tuple[int, bytes]]:
    """Every event still in the events stream on ``subject``: its sequence and payload."""
    async for sequence, data, _ in stored_messages(js, subjects.EVENTS_STREAM, subject):
        yield sequence, data


async def dead_letters(js: JetStreamContext, durable: str) -> AsyncIterator[DeadLetter]:
    """Every dead letter of ``durable``, oldest first."""
    stream, subject = subjects.DEAD_LETTERS_STREAM, subjects.dead_letters(durable)
    async for sequence, data, headers in stored_messages(js, stream, subject):
        original = headers.get(ORIGINAL_SEQUENCE, "")
        attempts = headers.get(DEAD_ATTEMPTS, "")
        yield DeadLetter(
            sequence=sequence,
            data=data,
            original_subject=headers.get(ORIGINAL_SUBJECT, ""),
            original_sequence=int(original) if original.isdigit() else None,
            reason=headers.get(DEAD_REASON, "unknown"),
            attempts=int(attempts) if attempts.isdigit() else 0,
        )


async def forget_dead_letter(js: JetStreamContext, sequence: int) -> bool:
    """Erase one dead letter; False when it was already gone."""
    return await _erase(js, subjects.DEAD_LETTERS_STREAM, sequence)


async def replay_dead_letters(
    js: JetStreamContext,
    durable: str,
    event_model: type[EventT],
    handle: Callable[[EventT], Awaitable[None]],
) -> ReplayReport:
    """Hand each dead letter of ``durable`` to ``handle`` once; remove those it handled.

    Handlers are idempotent, so two replays at once, or a replay of an event that was also
    stored some other way, store it once.
    """
    replayed = failed = 0
    async for letter in dead_letters(js, durable):
        try:
            await handle(event_model.model_validate_json(letter.data))
        except Exception as error:
            # Not log.exception: a validation error's text may quote the payload.
            log.warning(
                "dead letter failed again; kept",
                extra={"consumer": durable, "error": type(error).__name__},
            )
            failed += 1
            continue
        await forget_dead_letter(js, letter.sequence)
        replayed += 1
    return ReplayReport(replayed, failed, await count_dead_letters(js, durable))


# -- retention and erasure of events ----------------------------------------------------------


async def purge_acknowledged(
    js: JetStreamContext, subject: str, readers: Collection[str] | None = None
) -> int:
    """Remove from the events stream the messages on ``subject`` every reader acknowledged.

    A reader is any consumer whose filter can match ``subject``. ``readers`` (by default the
    subject's in ``subjects.EVENT_READERS``) must all be among them: until each exists, nothing
    is purged, so a service started for the first time after the others still reads every
    event. Returns the sequence below which such messages are now gone (0 when nothing could be
    purged, e.g. no reader yet).
    """
    expected = set(subjects.EVENT_READERS.get(subject, ()) if readers is None else readers)
    floor: int | None = None
    for info in await js.consumers_info(subjects.EVENTS_STREAM):
        if not _reads(info, subject):
            continue
        expected.discard(info.name)
        done = handled_through(info)
        floor = done if floor is None else min(floor, done)
    if not floor or expected:
        return 0
    await js.purge_stream(subjects.EVENTS_STREAM, subject=subject, seq=floor + 1)
    return floor + 1


async def forget_events(js: JetStreamContext, sequences: Iterable[int]) -> int:
    """Erase these messages from the events stream; returns how many were still there."""
    erased = 0
    for sequence in sequences:
        erased += await _erase(js, subjects.EVENTS_STREAM, sequence)
    return erased


async def _erase(js: JetStreamContext, stream: str, sequence: int) -> bool:
    try:
        # The server overwrites the message's bytes, not only its index entry.
        return await js.delete_msg(stream, sequence)
    except nats.js.errors.APIError as error:
        if error.err_code in _ALREADY_GONE:  # deleted, purged or aged out before
            return False
        raise


def handled_through(info: ConsumerInfo) -> int:
    """The stream sequence up to which ``info``'s consumer has handled every message."""
    done = info.ack_floor.stream_seq if info.ack_floor else 0
    if not info.num_pending and not info.num_ack_pending and info.delivered:
        # Nothing left for it: everything it could see up to its last delivery is handled.
        done = max(done, info.delivered.stream_seq)
    return done


async def caught_up(js: JetStreamContext, durable: str) -> bool:
    """Whether ``durable`` has handled every event stored so far on the subjects it reads.

    Measured against the stream's own last sequence on those subjects, not the consumer's
    pending counts alone: those can lag a message the stream has just stored.
    """
    info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
    filters = _filters(info)
    if not filters:  # it reads the whole stream
        stream = await js.stream_info(subjects.EVENTS_STREAM)
        return handled_through(info) >= stream.state.last_seq
    last = 0
    for subject in filters:
        try:
            stored = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except nats.js.errors.NotFoundError:  # nothing on it (any more)
            continue
        last = max(last, stored.seq or 0)
    return handled_through(info) >= last


def _filters(info: ConsumerInfo) -> list[str]:
    config = info.config
    return config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])


def _reads(info: ConsumerInfo, subject: str) -> bool:
    filters = _filters(info)
    return not filters or any(_overlaps(pattern, subject) for pattern in filters)


def _overlaps(pattern: str, subject: str) -> bool:
    """Whether some subject matches both (either may hold ``*`` and ``>`` wildcards)."""
    left, right = pattern.split("."), subject.split(".")
    for index, token in enumerate(left):
        if token == ">" or (index < len(right) and right[index] == ">"):
            return True
        if index >= len(right):
            return False
        if token != "*" and right[index] != "*" and token != right[index]:
            return False
    return len(left) == len(right)
