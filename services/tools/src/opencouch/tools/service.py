"""Wiring: one NATS connection, one micro service with an endpoint per tool served here."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from opencouch.contracts import subjects
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallReply, ToolCallRequest
from opencouch.runtime.endpoints import Endpoint, start_service
from opencouch.runtime.health import write_id_file
from opencouch.runtime.messaging import nats_connection
from opencouch.tools.crisis import CrisisDirectory
from opencouch.tools.handlers import ToolHandlers
from opencouch.tools.settings import ToolsSettings

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def tool_endpoints(handlers: ToolHandlers) -> list[Endpoint[ToolCallRequest, ToolCallReply]]:
    """One endpoint per tool this service implements, on the catalog's subject for it."""
    implemented = {
        "wait_for_user": handlers.wait_for_user,
        "lookup_crisis_resources": handlers.lookup_crisis_resources,
    }
    return [
        Endpoint(name, TOOL_CATALOG[name].subject, ToolCallRequest, handler)
        for name, handler in implemented.items()
    ]


async def serve(settings: ToolsSettings, stop: asyncio.Event) -> None:
    """Serve tool calls until ``stop`` is set."""
    handlers = ToolHandlers(CrisisDirectory.packaged())
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, subjects.TOOLS_SERVICE)
        )
        service = await start_service(
            nc,
            name=subjects.TOOLS_SERVICE,
            version=VERSION,
            description="Therapy skills, grounded lookup, crisis resources, guided exercises",
            endpoints=tool_endpoints(handlers),
            max_concurrency=settings.max_concurrency,
        )
        stack.push_async_callback(service.stop)
        write_id_file(settings.id_file, service.id)
        log.info("tools service ready", extra={"instance": service.id})
        await stop.wait()
        log.info("tools service stopping")
