"""Wiring: one NATS connection, and an endpoint per catalog tool this service owns."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from opencouch.contracts import subjects
from opencouch.contracts.tools import ToolOwner
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.service import NatsService, run_nats_service
from opencouch.runtime.tools import ToolHandler, tool_endpoints
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.settings import ToolsSettings

VERSION = "0.1.0"


def tools_service(handlers: ToolHandlers) -> NatsService:
    """The tools service: every catalog tool it owns, each on its catalog subject."""
    served: dict[str, ToolHandler] = {
        "wait_for_user": handlers.wait_for_user,
        "lookup_crisis_resources": handlers.lookup_crisis_resources,
    }
    return NatsService(
        name=subjects.TOOLS_SERVICE,
        version=VERSION,
        description="Therapy skills, grounded lookup, crisis resources, guided exercises",
        endpoints=tool_endpoints(ToolOwner.TOOLS, served),
    )


async def serve(settings: ToolsSettings, stop: asyncio.Event) -> None:
    """Serve tool calls until ``stop`` is set."""
    service = tools_service(ToolHandlers(CrisisDirectory.packaged()))
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.TOOLS_SERVICE)
        )
        await run_nats_service(nc, service, settings, stop)
