"""Memory outlives its processes: a fact from session 1 is recalled in session 2 of the same user,
and a preference saved in session 1 is in session 2's memory context, after the memory service
and then Postgres itself were restarted.

Restarting Postgres needs the machine's own cluster (``pg_ctlcluster``); other tests share that
server, so the outage is one quick restart, waited out until it accepts connections again.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import psycopg
import pytest

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode
from opencouch.contracts.memory import (
    MemoryContextReply,
    MemoryContextRequest,
)
from opencouch.memory.testing import Conversation, MemoryClient
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.testing.processes import ServiceProcess

StartMemory = Callable[..., ServiceProcess]
CLUSTERS = Path("/etc/postgresql")


def restart_local_postgres(database_url: str) -> None:
    """Restart this machine's Postgres cluster and wait until it accepts connections."""
    versions = sorted(path.name for path in CLUSTERS.iterdir()) if CLUSTERS.is_dir() else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no local Postgres cluster to restart (pg_ctlcluster)")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with psycopg.connect(database_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
async def client(nats_url: str, migrated: str) -> AsyncIterator[MemoryClient]:
    nc = await nats.connect(nats_url)
    try:
        yield MemoryClient(nc, await ensure_events_stream(nc), migrated)
    finally:
        await nc.close()


async def test_a_fact_and_a_preference_survive_restarts_of_memory_and_of_postgres(
    client: MemoryClient, start_memory: StartMemory, migrated: str
) -> None:
    first = Conversation()
    memory = start_memory()
    await client.publish(first.turn("My sister is called Ana, she lives in Lisbon."))
    await client.stored(first.session_id, 1)
    said = "please always answer me in short sentences"
    saved = await client.call(
        "save_response_preference",
        first,
        said,
        preference_text="Answer in short sentences.",
        user_quote=said,
    )
    assert saved.output["status"] == "saved"
    said = "you can bring up what I told you before"
    await client.call("set_proactive_memory_recall", first, said, enabled=True, user_quote=said)
    committed = await client.commit(first)
    assert committed.facts_committed == 1

    assert memory.stop() == 0
    memory = start_memory()
    await asyncio.to_thread(restart_local_postgres, migrated)

    # Session 2: same user, a new thread and voice session.
    second = Conversation(user_id=first.user_id)
    context = await client.ask(
        subjects.MEMORY_CONTEXT,
        MemoryContextRequest(
            thread_id=second.thread_id,
            user_id=second.user_id,
            memory_mode=MemoryMode.PERSISTENT,
        ),
        MemoryContextReply,
    )
    assert "- Answer in short sentences." in context.context_text
    recalled = await client.call("recall_saved_memory", second, query="my sister")
    assert recalled.output["status"] == "found", recalled.output
    assert recalled.output["items"][0]["text"] == "My sister is called Ana."
    assert recalled.output["items"][0]["source"]["session_id"] == first.session_id
