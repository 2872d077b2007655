"""Which catalog tools are actually served: the gateway offers a session only those.

Each owner announces its endpoints over nats.micro (``$SRV.INFO.<service>``); the gateway asks
now and then and remembers the answer, so a catalog entry no owner serves is never offered to
the model. An owner that does not answer keeps its last known set (a restart is not an outage
of its tools); one never heard from offers nothing.

A tool with ``failure_guidance`` (the crisis path) is offered whatever was heard: a session keeps
its tools for its whole life, and one begun while the owner was briefly unheard (a gateway that
started during its restart) must still be able to reach it later. A call it cannot serve gets
the guidance, never silence.

``OwnerWatch`` ends the calls waiting on an owner that is gone (killed in the middle of them,
even while other replicas of it run), or on a connection to NATS that was lost while they
waited, so they are answered unavailable within a second or three instead of at their deadline.
A pure tool's call still waiting after a check while its owner runs is asked again instead:
its holder may have been killed while other replicas run, and asking again gives the same
answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from opencouch.contracts import subjects
from opencouch.contracts.common import ErrorCode, HeldNote, MemoryMode
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

HELD_SILENCE_SECONDS: Final = 2.0
"""How long a call that asked for held notes waits without one (since the last, or since it
was sent) before the instance holding it is taken for gone: the owner says so every
``endpoints.HOLD_NOTE_SECONDS`` (0.5 s), so this is three notes missed after the first was due."""


@dataclass(slots=True)
class _Waiting:
    owner: ToolOwner
    started: float
    sent_on: int | None
    """The connection to NATS (``ServedTools.bus_epoch``) its request was sent on."""
    notes: str | None
    """The last token of its held-notes subject, if it asked for notes."""
    heard: float
    """When the holding instance last said so (``started`` until then)."""
    heard_on: int | None = None
    """The connection to NATS that last note came on."""
    may_ask_again: bool = False
    """It may be sent once more (a pure tool's call that has not been yet)."""


class OwnerWatch:
    """Gives up the tool calls that can no longer be answered, instead of leaving them to their
    deadline.

    An owner killed in the middle of a call never answers it, and without this the user would
    wait out the whole tool timeout in silence. Calls register while they wait (a dict entry,
    nothing else while a call is quick); once a second, ``check`` looks at each call that has
    waited longer than that:

    - A call that asked for held notes (``notes_subject``; every tool that keeps state, the
      ones that may take a while) is given up once the instance holding it has been silent for
      ``HELD_SILENCE_SECONDS``: killed, however many other replicas of its owner still run.
    - Any other call is given up when no instance of its owner runs any more: one
      ``$SRV.PING`` per owner whatever the number of calls.
    - A pure tool's call is answered in turn, so one still waiting at a check was most likely
      held by an instance killed while others run (it asks for no held notes that would say).
      While its owner runs it is asked again, once: a pure tool gives the same answer and
      changes nothing, and the first answer of either is the call's.

    An owner that runs and is slow is waited for up to the request's own deadline.

    The connection to NATS is watched the same way. A call whose request was sent on a
    connection since lost (NATS restarted) may have been lost with the server: once the
    connection is back, its answer has until the next check to arrive (one buffered on either
    side does, within milliseconds), then it ends ``service_unavailable``, unless the instance
    holding it has said so since the connection came back (its answer will come on it too).
    Calls waiting longer than a check while NATS stays down end so as well.
    """

    def __init__(
        self,
        served: ServedTools,
        every: float = OWNER_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        silence: float = HELD_SILENCE_SECONDS,
    ) -> None:
        self._served = served
        self._every = every
        self._clock = clock
        self._silence = silence
        self._waiting: dict[asyncio.Task[Any], _Waiting] = {}
        self._noted: dict[str, _Waiting] = {}
        self._given_up: set[asyncio.Task[Any]] = set()
        self._to_ask_again: set[asyncio.Task[Any]] = set()
        self._epoch = served.bus_epoch()
        self._epoch_seen_at = clock()
        self._me: str | None = None
        self._requests = itertools.count()

    async def listen(self, nc: NatsClient, me: str) -> None:
        """Hear the held notes of this gateway's calls on ``nc``, ``me`` naming this process
        (its instance id); until then none is asked for."""
        await nc.subscribe(subjects.held_notes(me, "*"), cb=self._heard)
        self._me = me

    def notes_subject(self) -> str | None:
        """A new subject for one request's held notes, to pass to ``wait`` and to the owner
        (``request(held_notes=)``); None while the watch does not listen."""
        if self._me is None:
            return None
        return subjects.held_notes(self._me, str(next(self._requests)))

    async def _heard(self, msg: Msg) -> None:
        try:
            HeldNote.model_validate_json(msg.data)
        except ValidationError:
            log.warning("a held note that does not fit its contract")
            return
        self.heard(msg.subject)

    def heard(self, notes: str) -> None:
        """The instance holding the request whose held notes go to ``notes`` says it still
        does; nothing if that call has ended since."""
        waiting = self._noted.get(notes.rpartition(".")[2])
        if waiting is not None:
            waiting.heard = self._clock()
            waiting.heard_on = self._served.bus_epoch()

    async def wait(
        self,
        owner: ToolOwner,
        asking: Awaitable[T],
        notes: str | None = None,
        again: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """What ``asking`` (a request to ``owner``, its held notes asked on ``notes``)
        returns; ``ServiceError`` (``service_unavailable``) as soon as it cannot be answered
        any more. ``again`` sends the same request once more (a pure tool's call only), for
        when it has waited a check's time on an owner that runs."""
        task = asyncio.current_task()
        assert task is not None
        now = self._clock()
        token = notes.rpartition(".")[2] if notes is not None else None
        waiting = _Waiting(
            owner, now, self._served.bus_epoch(), token, now, may_ask_again=again is not None
        )
        self._waiting[task] = waiting
        if token is not None:
            self._noted[token] = waiting
        try:
            while True:
                try:
                    return await asking
                except asyncio.CancelledError:
                    ours = task in self._given_up or task in self._to_ask_again
                    if not ours or task.uncancel() > 0:
                        raise  # cancelled by its caller (too), not by this watch alone
                    if task in self._given_up or again is None:
                        raise ServiceError(
                            ErrorCode.SERVICE_UNAVAILABLE, f"{owner.value} cannot answer this call"
                        ) from None
                    self._to_ask_again.discard(task)
                    asking = again()
        finally:
            del self._waiting[task]
            if token is not None:
                del self._noted[token]
            self._given_up.discard(task)
            self._to_ask_again.discard(task)

    async def run(self) -> None:
        """Check the long waits every ``every`` seconds, until cancelled."""
        while True:
            slept_at = self._clock()
            await asyncio.sleep(self._every)
            await self.check(stalled=self._clock() - slept_at > self._every * 1.5)

    async def check(self, stalled: bool = False) -> None:
        """Give up the calls waiting longer than ``every`` that cannot be answered: sent on a
        connection lost since (given a check's time once it is back), held by an instance
        silent too long, or to an owner that no longer runs. A pure tool's call to an owner
        that runs is asked again, once.

        ``stalled``: this gateway did not run for a while (its check came late), so held
        notes sent meanwhile may still be unread: no holder is taken for silent this time."""
        now = self._clock()
        since = now - self._every
        epoch = self._served.bus_epoch()
        if epoch != self._epoch:  # lost or made again since the last check
            self._epoch, self._epoch_seen_at = epoch, now
        if self._epoch_seen_at <= since:  # and it has been so for a check's time
            for task, waiting in self._long_waits(since):
                # A holder that has said so on this connection answers on it too.
                if epoch is None or epoch not in (waiting.sent_on, waiting.heard_on):
                    self._cancel(task)
        for task, waiting in self._long_waits(since):
            if waiting.notes is not None and now - waiting.heard > self._silence and not stalled:
                self._cancel(task)
        owners = {waiting.owner for _, waiting in self._long_waits(since) if waiting.notes is None}
        for owner in owners:
            running = await self._served.owner_running(owner)
            for task, waiting in self._long_waits(since):
                if waiting.owner is not owner or waiting.notes is not None:
                    continue
                if not running:
                    self._cancel(task)
                elif waiting.may_ask_again:
                    waiting.may_ask_again = False
                    self._to_ask_again.add(task)
                    task.cancel()

    def _long_waits(self, since: float) -> list[tuple[asyncio.Task[Any], _Waiting]]:
        """The calls waiting since before ``since``, neither given up nor about to be asked
        again. A call that ended has left the dict."""
        return [
            (task, waiting)
            for task, waiting in self._waiting.items()
            if waiting.started <= since
            and task not in self._given_up
            and task not in self._to_ask_again
        ]

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._given_up.add(task)
        task.cancel()
