"""A NATS micro service whose endpoints take and return contracts.

nats.micro runs one handler at a time per endpoint; here each request runs in its own task,
bounded by a semaphore, so one slow call never queues the rest. An endpoint whose handler never
waits on anything (``Endpoint.inline``) is answered in nats.micro's own handler instead: a task
of its own would only add a turn of the event loop. Replicas join one queue group.

A request that names a subject for held notes (the ``Opencouch-Held-Notes`` header) is told
there, ``HOLD_NOTE_SECONDS`` after it arrived and as often again until it is answered, that this
instance still holds it (``HeldNote``). Its caller cannot otherwise tell an instance that works
on its request from one killed in the middle of it while other replicas still run; a quick
request costs a timer, and an inline one nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service
from pydantic import BaseModel, ValidationError

from opencouch.contracts.common import ErrorCode, HeldNote
from opencouch.runtime.errors import ServiceError, describe_validation, unreachable_store
from opencouch.runtime.messaging import HELD_NOTES_HEADER
from opencouch.runtime.observation import serving

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)
ReplyT = TypeVar("ReplyT", bound=BaseModel)

HOLD_NOTE_SECONDS: Final = 0.5
"""How long a request is held before its caller is first told so, and how often after."""


@dataclass(frozen=True)
class Endpoint(Generic[RequestT, ReplyT]):
    """One request/reply subject, its request model and its handler."""

    name: str
    subject: str
    request_model: type[RequestT]
    handler: Callable[[RequestT], Awaitable[ReplyT]]
    inline: bool = False
    """The handler answers without waiting on anything (no I/O, no lock): served in turn."""


class ContractService:
    """A running nats.micro service; ``stop`` stops taking requests and finishes in-flight ones."""

    def __init__(self, nc: NatsClient, service: Service, max_concurrency: int, name: str) -> None:
        self._nc = nc
        self._service = service
        self._name = name
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._note: bytes | None = None
        self._left = False

    @property
    def id(self) -> str:
        """This instance's id, as ``$SRV.PING.<name>.<id>`` addresses it."""
        return self._service.id

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in a task this service keeps and drains on stop."""
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def leave(self) -> None:
        """Stop taking requests (leave the queue group); those in flight go on. Once only."""
        if not self._left:
            self._left = True
            await self._service.stop()

    async def stop(self, grace: float = 10.0) -> None:
        """Leave the queue group, then wait up to ``grace`` seconds for in-flight requests."""
        await self.leave()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        # What outlived the grace is abandoned; its callers time out as if the owner died.
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)

    async def serve(self, endpoint: Endpoint[Any, Any], request: Request) -> None:
        """Answer ``request`` in one of the service's slots (``max_concurrency`` at most); held
        notes from its arrival, waiting for a slot included, to its answer."""
        notes = request.headers.get(HELD_NOTES_HEADER) if request.headers else None
        holding = _Holding(self._nc, notes, self._held_note()) if notes else None
        try:
            async with self._slots:
                await self.answer(endpoint, request)
        finally:
            if holding is not None:
                holding.stop()

    def _held_note(self) -> bytes:
        if self._note is None:
            self._note = HeldNote(instance_id=self.id).model_dump_json().encode()
        return self._note

    async def answer(self, endpoint: Endpoint[Any, Any], request: Request) -> None:
        """Answer ``request`` now: timed, traced, logged."""
        started = time.perf_counter()
        with serving(
            self._name, endpoint.name, request.subject, request.headers, len(request.data)
        ) as served:
            outcome = await self._answer(endpoint, request)
            served.outcome(outcome)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "served",
                extra={
                    "endpoint": endpoint.name,
                    "outcome": outcome,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

    async def _answer(self, endpoint: Endpoint[Any, Any], request: Request) -> str:
        """Reply to ``request``; returns ``ok`` or the error code replied."""
        try:
            payload = endpoint.request_model.model_validate_json(request.data)
        except ValidationError as error:
            return await _respond_error(
                request, ServiceError(ErrorCode.INVALID_REQUEST, describe_validation(error))
            )
        try:
            reply = await endpoint.handler(payload)
        except ServiceError as error:
            return await _respond_error(request, error)
        except Exception as error:
            store = unreachable_store(error)
            if store is None:
                log.exception("handler failed", extra={"endpoint": endpoint.name})
                return await _respond_error(
                    request, ServiceError(ErrorCode.INTERNAL, f"{endpoint.name} failed")
                )
            log.warning(
                "store unreachable",
                extra={"endpoint": endpoint.name, "store": store, "error": type(error).__name__},
            )
            return await _respond_error(
                request,
                ServiceError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"{endpoint.name} is unavailable: its {store} cannot be reached",
                ),
            )
        data = reply.model_dump_json().encode()
        try:
            await request.respond(data)
        except nats.errors.MaxPayloadError:
            # Unsent, the caller would wait out its whole deadline for nothing.
            log.error(
                "reply too large", extra={"endpoint": endpoint.name, "reply_bytes": len(data)}
            )
            return await _respond_error(
                request, ServiceError(ErrorCode.INTERNAL, f"{endpoint.name} reply too large")
            )
        return "ok"


async def start_service(
    nc: NatsClient,
    *,
    name: str,
    version: str,
    description: str,
    endpoints: Sequence[Endpoint[Any, Any]],
    max_concurrency: int = 64,
) -> ContractService:
    """Announce a micro service on ``nc`` and start serving ``endpoints``."""
    service = await add_service(nc, name=name, version=version, description=description)
    running = ContractService(nc, service, max_concurrency, name)
    for endpoint in endpoints:
        await service.add_endpoint(
            name=endpoint.name,
            subject=endpoint.subject,
            handler=_dispatcher(running, endpoint),
        )
    return running


def _dispatcher(
    running: ContractService, endpoint: Endpoint[Any, Any]
) -> Callable[[Request], Awaitable[None]]:
    if endpoint.inline:
        # nats.micro hands an endpoint's requests to its handler one at a time: an inline
        # endpoint never holds more than one, so it takes no slot.

        async def serve_inline(request: Request) -> None:
            await running.answer(endpoint, request)

        return serve_inline

    async def dispatch(request: Request) -> None:
        running.spawn(running.serve(endpoint, request))

    return dispatch


class _Holding:
    """Says ``note`` on ``subject`` every ``HOLD_NOTE_SECONDS``, the first after as long, until
    stopped. Core NATS, at most once: a caller gives up only after several go unheard."""

    def __init__(self, nc: NatsClient, subject: str, note: bytes) -> None:
        self._nc = nc
        self._subject = subject
        self._note = note
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(HOLD_NOTE_SECONDS, self._say)
        self._saying: asyncio.Future[None] | None = None

    def _say(self) -> None:
        self._saying = asyncio.ensure_future(self._nc.publish(self._subject, self._note))
        self._saying.add_done_callback(_unheard)
        self._timer = self._loop.call_later(HOLD_NOTE_SECONDS, self._say)

    def stop(self) -> None:
        self._timer.cancel()


def _unheard(saying: asyncio.Future[None]) -> None:
    """A note NATS did not take (it is down or reconnecting): the next may be."""
    if not saying.cancelled():
        saying.exception()


async def _respond_error(request: Request, error: ServiceError) -> str:
    await request.respond_error(
        str(error.status), error.message[:200], data=error.response().model_dump_json().encode()
    )
    return error.code.value
