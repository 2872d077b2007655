"""Which catalog tools are actually served: the gateway offers a session only those.

Each owner announces its endpoints over nats.micro (``$SRV.INFO.<service>``); the gateway asks
now and then and remembers the answer, so a catalog entry no owner serves is never offered to
the model. An owner that does not answer keeps its last known set (a restart is not an outage
of its tools); one never heard from offers nothing.

A tool with ``failure_guidance`` (the crisis path) is offered whatever was heard: a session keeps
its tools for its whole life, and one begun while the owner was briefly unheard (a gateway that
started during its restart) must still be able to reach it later. A call it cannot serve gets
the guidance, never silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Final

import nats.errors
from nats.aio.client import Client as NatsClient

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import ToolOwner, ToolSpec, tools_for_mode

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
