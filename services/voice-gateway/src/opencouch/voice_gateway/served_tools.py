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
or on the instance of it that may hold them (one replica of several), or on a connection to
NATS that was lost while they waited, so they are answered unavailable within a second or two
instead of at their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

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

    def __init__(
        self,
        nc: NatsClient,
        refresh_seconds: float = 10.0,
        timeout: float = 0.5,
        gather_seconds: float = 0.2,
    ) -> None:
        self._nc = nc
        self._refresh = refresh_seconds
        self._timeout = timeout
        self._gather = gather_seconds
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

    async def owner_instances(self, owner: ToolOwner) -> frozenset[str]:
        """The ids of ``owner``'s instances that answer ``$SRV.PING.<service>`` within
        ``gather_seconds``: the instances running now, less any too busy to answer in time
        (none when the bus cannot tell)."""
        found: set[str] = set()

        async def seen(msg: Msg) -> None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found.add(str(json.loads(msg.data)["id"]))

        try:
            inbox = self._nc.new_inbox()
            subscription = await self._nc.subscribe(inbox, cb=seen)
            try:
                await self._nc.publish(f"$SRV.PING.{OWNER_SERVICES[owner]}", b"", reply=inbox)
                await asyncio.sleep(self._gather)
            finally:
                await subscription.unsubscribe()
        except nats.errors.Error:
            return frozenset()
        return frozenset(found)

    async def instance_gone(self, owner: ToolOwner, instance: str) -> bool:
        """True only when instance ``instance`` of ``owner`` is certainly off NATS: nobody
        listens on its own ``$SRV.PING.<service>.<id>``. A timeout or an outage is not
        certain."""
        try:
            await self._nc.request(
                f"$SRV.PING.{OWNER_SERVICES[owner]}.{instance}", b"", timeout=self._timeout
            )
        except nats.errors.NoRespondersError:
            return True
        except nats.errors.Error:
            return False
        return False

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


class _Waiting(NamedTuple):
    owner: ToolOwner
    since: float
    sent_on: int | None
    """The connection to NATS its request was sent on (``ServedTools.bus_epoch``)."""
    instances: frozenset[str]
    """The owner's instances last seen running before it was asked: one of them has it, unless
    one started since."""


class OwnerWatch:
    """Gives up the tool calls that can no longer be answered, instead of leaving them to their
    deadline.

    An owner killed in the middle of a call never answers it, and without this the user would
    wait out the whole tool timeout in silence. Calls register while they wait (a dict entry,
    nothing else while a call is quick); once a second, ``run`` checks the owner of each call
    that has waited longer than that, one ``$SRV.PING`` per owner whatever the number of calls,
    and when no instance of an owner runs any more its calls end ``service_unavailable`` at
    once. An owner that runs but is slow is waited for up to the request's own deadline.

    An owner scaled out, or restarted quickly, still runs when one of its instances is killed.
    So the watch also notes, once a second, which instances of each owner run, and a call
    remembers those seen before it was asked: once one of them is certainly off NATS (nobody
    listens on its own ping subject), the call may have been its, and is given up. A call that
    a surviving instance holds for longer than a check, just as a sibling dies, is given up too:
    an answer "unavailable" a few seconds early, rather than every call of the dead instance
    waiting out its deadline.

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
        self._waiting: dict[asyncio.Task[Any], _Waiting] = {}
        self._given_up: set[asyncio.Task[Any]] = set()
        self._instances: dict[ToolOwner, frozenset[str]] = {}
        self._epoch = served.bus_epoch()
        self._epoch_seen_at = clock()

    async def wait(self, owner: ToolOwner, asking: Awaitable[T]) -> T:
        """What ``asking`` (a request to ``owner``) returns; ``ServiceError``
        (``service_unavailable``) as soon as it cannot be answered any more."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting[task] = _Waiting(
            owner,
            self._clock(),
            self._served.bus_epoch(),
            self.instances(owner),
        )
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
        """Note the owners' instances, then check the long waits every ``every`` seconds,
        until cancelled."""
        await self.note_instances()
        while True:
            await asyncio.sleep(self._every)
            await self.check()
            await self.note_instances()

    def instances(self, owner: ToolOwner) -> frozenset[str]:
        """The instances of ``owner`` last noted running."""
        return self._instances.get(owner, frozenset())

    async def note_instances(self) -> None:
        """Which instances of each owner run now, for the calls asked from now on."""
        owners = list(OWNER_SERVICES)
        found = await asyncio.gather(*(self._served.owner_instances(o) for o in owners))
        # One missed (too busy to answer in time) only leaves its calls to the checks above.
        self._instances = dict(zip(owners, found, strict=True))

    async def check(self) -> None:
        """Give up the calls waiting longer than ``every`` that cannot be answered: sent on a
        connection lost since (given a check's time once it is back), to an owner that no
        longer runs, or while an instance that may hold them ran that is gone now."""
        now = self._clock()
        since = now - self._every
        epoch = self._served.bus_epoch()
        if epoch != self._epoch:  # lost or made again since the last check
            self._epoch, self._epoch_seen_at = epoch, now
        if self._epoch_seen_at <= since:  # and it has been so for a check's time
            for task, waiting in self._long_waits(since):
                if epoch is None or waiting.sent_on != epoch:
                    self._cancel(task)
        owners = {waiting.owner for _, waiting in self._long_waits(since)}
        for owner in owners:
            if not await self._served.owner_running(owner):
                for task, waiting in self._long_waits(since):
                    if waiting.owner is owner:
                        self._cancel(task)
                continue
            asked_of = sorted(
                {i for _, w in self._long_waits(since) if w.owner is owner for i in w.instances}
            )
            gone_now = await asyncio.gather(
                *(self._served.instance_gone(owner, instance) for instance in asked_of)
            )
            gone = {instance for instance, out in zip(asked_of, gone_now, strict=True) if out}
            for task, waiting in self._long_waits(since):
                if waiting.owner is owner and waiting.instances & gone:
                    self._cancel(task)

    def _long_waits(self, since: float) -> list[tuple[asyncio.Task[Any], _Waiting]]:
        """The calls waiting since before ``since`` and not given up yet. A call that ended
        has left the dict."""
        return [
            (task, waiting)
            for task, waiting in self._waiting.items()
            if waiting.since <= since and task not in self._given_up
        ]

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._given_up.add(task)
        task.cancel()
