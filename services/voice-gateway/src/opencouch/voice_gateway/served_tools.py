"""Which catalog tools are actually served: the gateway offers a session only those.

Each owner announces its endpoints over nats.micro (``$SRV.INFO.<service>``); the gateway asks
now and then and remembers the answer, so a catalog entry no owner serves is never offered to
the model. An owner that does not answer keeps its last known set (a restart is not an outage
of its tools); one never heard from offers nothing.

A tool with ``failure_guidance`` (the crisis path) is offered whatever was heard: a session keeps
its tools for its whole life, and one begun while the owner was briefly unheard (a gateway that
started during its restart) must still be able to reach it later. A call it cannot serve gets
the guidance, never silence.

``OwnerWatch`` ends the calls waiting on an owner that is gone (killed in the middle of them),
or on a connection to NATS that was lost while they waited, so they are answered unavailable
within a second or two instead of at their deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.contracts.tools import ToolOwner, ToolSpec, tools_for_mode
from opencouch.runtime.errors import ServiceError

log = logging.getLogger(__name__)

OWNER_SERVICES: Final = {
    ToolOwner.TOOLS: subjects.TOOLS_SERVICE,
    ToolOwner.MEMORY: subjects.MEMORY_SERVICE,
}


class ServedTools:
    """The subjects each owner serves, refreshed at most every ``refresh_seconds``."""

    def __init__(self, nc: NatsClient, refresh_seconds: float = 10.0, timeout: float = 0.5) -> None:
        self._nc = nc
        self._refresh = refresh_seconds
        self._timeout = timeout
        self._subjects: dict[ToolOwner, frozenset[str]] = {}
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def for_mode(self, mode: MemoryMode) -> list[ToolSpec]:
        """The tools a session in ``mode`` is offered: in its mode, and served by their owner
        or with guidance for when they cannot run."""
        served = await self._served()
        return [
            spec
            for spec in tools_for_mode(mode)
            if spec.failure_guidance is not None or spec.subject in served.get(spec.owner, ())
        ]

    def bus_epoch(self) -> int | None:
        """Which connection to NATS this is: how many times it has been made again since the
        first, None while it is down. A request sent on one connection may never be answered
        on the next (what the server held when it went away is lost)."""
        if not self._nc.is_connected:
            return None
        return int(self._nc.stats["reconnects"])

    async def owner_running(self, owner: ToolOwner) -> bool:
        """False only when no instance of ``owner``'s service is on NATS now: every instance
        answers ``$SRV.PING.<service>`` for as long as it runs, and NATS says at once when
        nobody listens. True when one answers, and when the bus cannot tell (a timeout, an
        outage): only a certain absence counts."""
        try:
            await self._nc.request(f"$SRV.PING.{OWNER_SERVICES[owner]}", b"", timeout=self._timeout)
        except nats.errors.NoRespondersError:
            return False
        except nats.errors.Error:
            return True
        return True

    async def _served(self) -> dict[ToolOwner, frozenset[str]]:
        if time.monotonic() - self._checked_at < self._refresh:
            return self._subjects
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._refresh:
                found = await asyncio.gather(*(self._ask(owner) for owner in OWNER_SERVICES))
                for owner, endpoints in zip(OWNER_SERVICES, found, strict=True):
                    if endpoints is not None:
                        self._subjects[owner] = endpoints
                self._checked_at = time.monotonic()
        return self._subjects

    async def _ask(self, owner: ToolOwner) -> frozenset[str] | None:
        try:
            reply = await self._nc.request(
                f"$SRV.INFO.{OWNER_SERVICES[owner]}", b"", timeout=self._timeout
            )
            info = json.loads(reply.data)
            return frozenset(str(endpoint["subject"]) for endpoint in info.get("endpoints") or [])
        except (nats.errors.Error, ValueError, KeyError, TypeError) as error:
            log.warning(
                "tool owner did not announce its tools",
                extra={"owner": owner.value, "error": type(error).__name__},
            )
            return None


T = TypeVar("T")

OWNER_CHECK_SECONDS: Final = 1.0
"""How long a tool call waits on its owner before the owner is checked, and how often after."""


class OwnerWatch:
    """Gives up the tool calls that can no longer be answered, instead of leaving them to their
    deadline.

    An owner killed in the middle of a call never answers it, and without this the user would
    wait out the whole tool timeout in silence. Calls register while they wait (a dict entry,
    nothing else while a call is quick); once a second, ``run`` checks the owner of each call
    that has waited longer than that, one ``$SRV.PING`` per owner whatever the number of calls,
    and when no instance of an owner runs any more its calls end ``service_unavailable`` at
    once. An owner that runs but is slow is waited for up to the request's own deadline.

    The connection to NATS is watched the same way. A call whose request was sent on a
    connection since lost (NATS restarted) may have been lost with the server: once the
    connection is back, its answer has until the next check to arrive (one buffered on either
    side does, within milliseconds), then it ends ``service_unavailable``. So do calls waiting
    longer than a check while NATS stays down.
    """

    def __init__(
        self,
        served: ServedTools,
        every: float = OWNER_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._served = served
        self._every = every
        self._clock = clock
        self._waiting: dict[asyncio.Task[Any], tuple[ToolOwner, float, int | None]] = {}
        self._given_up: set[asyncio.Task[Any]] = set()
        self._epoch = served.bus_epoch()
        self._epoch_seen_at = clock()

    async def wait(self, owner: ToolOwner, asking: Awaitable[T]) -> T:
        """What ``asking`` (a request to ``owner``) returns; ``ServiceError``
        (``service_unavailable``) as soon as it cannot be answered any more."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting[task] = (owner, self._clock(), self._served.bus_epoch())
        try:
            return await asking
        except asyncio.CancelledError:
            if task not in self._given_up or task.uncancel() > 0:
                raise  # cancelled by its caller (too), not given up here alone
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"{owner.value} cannot answer this call"
            ) from None
        finally:
            del self._waiting[task]
            self._given_up.discard(task)

    async def run(self) -> None:
        """Check the long waits every ``every`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._every)
            await self.check()

    async def check(self) -> None:
        """Give up the calls waiting longer than ``every`` that cannot be answered: sent on a
        connection lost since (given a check's time once it is back), or to an owner that no
        longer runs."""
        now = self._clock()
        since = now - self._every
        epoch = self._served.bus_epoch()
        if epoch != self._epoch:  # lost or made again since the last check
            self._epoch, self._epoch_seen_at = epoch, now
        if self._epoch_seen_at <= since:  # and it has been so for a check's time
            for task, _, sent_on in self._long_waits(since):
                if epoch is None or sent_on != epoch:
                    self._cancel(task)
        owners = {owner for _, owner, _ in self._long_waits(since)}
        for owner in owners:
            if not await self._served.owner_running(owner):
                for task, waited_on, _ in self._long_waits(since):
                    if waited_on is owner:
                        self._cancel(task)

    def _long_waits(self, since: float) -> list[tuple[asyncio.Task[Any], ToolOwner, int | None]]:
        """The calls waiting since before ``since`` and not given up yet: each with its owner
        and the connection its request was sent on. A call that ended has left the dict."""
        return [
            (task, owner, sent_on)
            for task, (owner, started, sent_on) in self._waiting.items()
            if started <= since and task not in self._given_up
        ]

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._given_up.add(task)
        task.cancel()
