"""The service as it is deployed: a process that migrates, becomes healthy, answers tool calls
and crisis screens, and exits 0 on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import nats

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.tools import TOOL_CATALOG, ToolCallContext, ToolCallReply, ToolCallRequest
from opencouch.runtime.messaging import request
from opencouch.testing.processes import nats_ping, start_service
from opencouch.tools.testing import new_session_id


async def test_the_service_process_serves_and_stops_cleanly(
    nats_url: str, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    id_file = tmp_path / "tools.id"
    service = start_service(
        "tools",
        "opencouch.tools",
        {
            "NATS_URL": nats_url,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "TOOLS_ID_FILE": str(id_file),
        },
        tmp_path,
        nats_ping("opencouch-tools", id_file, nats_url),
    )
    try:
        service.wait_healthy(timeout=90)
        nc = await nats.connect(nats_url)
        try:
            reply = await request(
                nc,
                TOOL_CATALOG["lookup_crisis_resources"].subject,
                ToolCallRequest(
                    tool_name="lookup_crisis_resources",
                    arguments={},
                    context=ToolCallContext(
                        session_id=new_session_id(),
                        thread_id="process-test",
                        memory_mode=MemoryMode.INCOGNITO,
                        current_user_message="I live in New South Wales",
                    ),
                ),
                ToolCallReply,
                timeout=10,
            )
        finally:
            await nc.close()
        assert reply.output["status"] == "found"
        assert reply.output["region"] == "AU"
    finally:
        code = service.stop()
    assert code == 0, service.log_tail()
    assert "I live in" not in service.log_path.read_text()
