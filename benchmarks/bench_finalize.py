"""How long finalizing a 400-turn voice session takes, with the offline (extractive) summariser.

One finalization is what the finalizer does with a session's end: memory's COUNT of stored and
classified turns, the transcript in pages over NATS, the arc, memory's commit (the arc kept as
episodic memory), and the conditional write of the result. The real memory service answers (in
this process) on a private nats-server, over a fresh database on the Postgres at
``DATABASE_URL`` and the Redis at ``REDIS_URL``. Each run finalizes a new session whose 400
turns memory already holds. Prints one JSON line; exits 1 when the median run takes 1 s or more.

    uv run python benchmarks/bench_finalize.py [--turns 400] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import nats
import psycopg

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import SessionEnded
from opencouch.contracts.voice_api import TurnOutcome
from opencouch.finalizer.arc import SpokenTurn
from opencouch.finalizer.extractive import extract_arc
from opencouch.finalizer.service import MIGRATIONS as FINALIZER_MIGRATIONS
from opencouch.finalizer.service import build
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.memory.service import MIGRATIONS as MEMORY_MIGRATIONS
from opencouch.memory.service import serve as serve_memory
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.jetstream import ensure_events_stream
from opencouch.runtime.postgres import apply_migrations, connection_pool
from opencouch.testing.servers import nats_server, postgres_database, redis_server

LIMIT_MS = 1000.0
SAID = [
    "Work has been relentless and my manager keeps adding deadlines.",
    "I barely sleep, I lie awake replaying every meeting in my head.",
    "My sister called again and we argued about our parents.",
    "Is it normal to feel this tired all the time?",
    "I think I'll try a short walk after lunch tomorrow.",
    "Money is tight this month and the rent went up again.",
    "I felt a bit calmer after we talked about breathing last time.",
    "Sometimes I feel lonely even when friends are around.",
]
REPLIES = [
    "That sounds like a lot to carry. What part of it weighs on you most right now?",
    "Not sleeping makes everything heavier. What does a typical night look like?",
    "Family arguments can leave us raw. How did you feel once the call ended?",
    "Yes, ongoing stress can leave people drained for a long time.",
]


def fill(database_url: str, session_id: str, thread_id: str, turns: int) -> None:
    """Memory already holds the session's turns, each classified (as memory stores them)."""
    rng = random.Random(session_id)
    start = datetime.now(UTC) - timedelta(hours=2)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO memory.threads (thread_id) VALUES (%s)", (thread_id,))
        with conn.cursor() as cursor:
            with cursor.copy(
                "COPY memory.turns (thread_id, client_turn_id, session_id, user_text, "
                "assistant_text, route, response_style, outcome, started_at, recorded_at) "
                "FROM STDIN"
            ) as copy:
                for n in range(turns):
                    at = start + timedelta(seconds=15 * n)
                    copy.write_row(
                        (thread_id, f"t-{n}", session_id, rng.choice(SAID), rng.choice(REPLIES),
                         "therapeutic", "voice", "completed", at, at + timedelta(seconds=10))
                    )  # fmt: skip
            with cursor.copy(
                "COPY memory.turn_classifications (session_id, client_turn_id, thread_id, "
                "level, reason, classified_at) FROM STDIN"
            ) as copy:
                for n in range(turns):
                    copy.write_row((session_id, f"t-{n}", thread_id, n % 2, "bench", start))


async def measure(
    nats_url: str, redis_url: str, database_url: str, turns: int, runs: int
) -> dict[str, float]:
    with TemporaryDirectory() as folder:
        memory_settings = MemorySettings(
            nats_url=nats_url,
            redis_url=redis_url,
            database_url=database_url,
            id_file=Path(folder) / "memory.id",
            log_level="WARNING",
        )
        stop = asyncio.Event()
        memory = asyncio.create_task(serve_memory(memory_settings, stop))
        while not memory_settings.health_id_file.exists():
            if memory.done():
                memory.result()
            await asyncio.sleep(0.05)
        settings = FinalizerSettings(
            nats_url=nats_url, database_url=database_url, summariser="extractive"
        )
        nc = await nats.connect(nats_url)
        try:
            js = await ensure_events_stream(nc)
            async with connection_pool(database_url) as pool, httpx.AsyncClient() as http:
                parts = build(settings, pool, nc, js, http, model=None)
                times = []
                for run in range(runs + 1):  # the first warms up
                    session_id, thread_id = f"vs_{uuid.uuid4().hex}", f"bench-{run}"
                    fill(database_url, session_id, thread_id, turns)
                    event = SessionEnded(
                        session_id=session_id,
                        thread_id=thread_id,
                        memory_mode=MemoryMode.PERSISTENT,
                        expected_turn_count=turns,
                        ended_at=datetime.now(UTC),
                    )
                    started = time.perf_counter()
                    await parts.handlers.on_session_ended(event)
                    elapsed = (time.perf_counter() - started) * 1000
                    record = await parts.store.get(session_id)
                    assert record is not None, "not finalized"
                    assert record.status == "completed", record.detail
                    assert record.turn_count == turns, record.turn_count
                    assert record.summary, "no summary"
                    assert record.peak_crisis_level == 1, record.peak_crisis_level
                    if run:
                        times.append(elapsed)
        finally:
            await nc.close()
            stop.set()
            await memory
    spoken = [
        SpokenTurn(SAID[n % len(SAID)], REPLIES[n % len(REPLIES)], TurnOutcome.COMPLETED,
                   datetime.now(UTC))
        for n in range(turns)
    ]  # fmt: skip
    started = time.perf_counter()
    extract_arc(spoken)
    summarise_ms = (time.perf_counter() - started) * 1000
    return {
        "finalize_p50_ms": round(statistics.median(times), 1),
        "finalize_max_ms": round(max(times), 1),
        "extractive_arc_ms": round(summarise_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with (
        nats_server(private=True) as nats_url,
        redis_server() as redis_url,
        postgres_database() as database_url,
    ):
        apply_migrations(database_url, MEMORY_MIGRATIONS, owner="memory")
        apply_migrations(database_url, FINALIZER_MIGRATIONS, owner="finalizer")
        result = asyncio.run(measure(nats_url, redis_url, database_url, args.turns, args.runs))
    print(json.dumps({"benchmark": "finalize", "turns": args.turns, "runs": args.runs, **result}))
    sys.exit(0 if result["finalize_p50_ms"] < LIMIT_MS else 1)


if __name__ == "__main__":
    main()
