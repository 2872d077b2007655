"""The gateway offers a session the catalog tools an owner serves in its mode, and the crisis
path always."""

from __future__ import annotations

from typing import Any

import nats

from opencouch.contracts import subjects
from opencouch.contracts.care import WaitForUserOutput
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallRequest
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.testing.servers import nats_server
from opencouch.voice_gateway.served_tools import ServedTools


async def _answer(_: Any) -> WaitForUserOutput:
    return WaitForUserOutput()


def _serving(*names: str) -> list[Endpoint[Any, Any]]:
    return [Endpoint(name, TOOL_CATALOG[name].subject, ToolCallRequest, _answer) for name in names]


async def test_only_served_tools_of_the_sessions_mode_are_offered() -> None:
    with nats_server(private=True) as url:
        nc = await nats.connect(url)
        owners = []
        try:
            # Owners that are up answer at once; the timeout only bounds a machine under load.
            served = ServedTools(nc, refresh_seconds=0, timeout=5)
            # No owner has ever answered: only the crisis path, whose failure has a safe answer
            # (a session keeps its tools for life, and the owner may be back a second later).
            unheard = [spec.name for spec in await served.for_mode(MemoryMode.INCOGNITO)]
            assert unheard == ["lookup_crisis_resources", "get_crisis_support_template"]
            assert all(TOOL_CATALOG[name].failure_guidance for name in unheard)

            owners.append(
                await start_service(
                    nc,
                    name=subjects.TOOLS_SERVICE,
                    version="0.0.1",
                    description="test",
                    endpoints=_serving("wait_for_user", "lookup_crisis_resources"),
                )
            )
            memory = await start_service(
                nc,
                name=subjects.MEMORY_SERVICE,
                version="0.0.1",
                description="test",
                endpoints=_serving("show_memory_status", "recall_saved_memory"),
            )
            owners.append(memory)
            incognito = [spec.name for spec in await served.for_mode(MemoryMode.INCOGNITO)]
            persistent = [spec.name for spec in await served.for_mode(MemoryMode.PERSISTENT)]
            # Catalog order; an unserved catalog tool is never offered; persistent-only tools
            # never reach an incognito session even when served.
            assert incognito == [
                "wait_for_user",
                "show_memory_status",
                "lookup_crisis_resources",
                "get_crisis_support_template",
            ]
            assert persistent == [*incognito, "recall_saved_memory"]

            # An owner that stops answering keeps its last known tools (a restart is no outage).
            await memory.stop()
            owners.remove(memory)
            again = [spec.name for spec in await served.for_mode(MemoryMode.PERSISTENT)]
            assert again == persistent
        finally:
            for owner in owners:
                await owner.stop()
            await nc.close()
