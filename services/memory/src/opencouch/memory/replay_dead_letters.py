"""``python -m opencouch.memory.replay_dead_letters``: store the turns that went to dead letters.

A turn goes to the dead letters when it could not be stored through every retry (Postgres down
for longer than the retry window, say). Once the cause is fixed, this hands each one to the
same handler the consumer uses, removes those it stored, and prints what it did as one JSON
line. Turns are stored once however often this runs. Exits 1 when some are still waiting.

    python -m opencouch.memory.replay_dead_letters [--count-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnClassified, TurnRecorded
from opencouch.memory.service import build
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.jetstream import (
    count_dead_letters,
    ensure_events_stream,
    replay_dead_letters,
)
from opencouch.runtime.logs import configure_logging
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import connection_pool


async def replay(settings: MemorySettings, *, count_only: bool) -> dict[str, dict[str, int]]:
    """Replay (or only count) the dead letters of memory's two consumers."""
    report: dict[str, dict[str, int]] = {}
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, f"{subjects.MEMORY_SERVICE}-replay")
        )
        js = await ensure_events_stream(nc)
        if count_only:
            for durable in (
                subjects.MEMORY_TURNS_CONSUMER,
                subjects.MEMORY_CLASSIFICATIONS_CONSUMER,
            ):
                report[durable] = {"waiting": await count_dead_letters(js, durable)}
            return report
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=2, timeout=settings.db_timeout_seconds)
        )
        redis = Redis.from_url(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        handlers, _ = build(settings, pool, redis, js)
        turns = await replay_dead_letters(
            js, subjects.MEMORY_TURNS_CONSUMER, TurnRecorded, handlers.on_turn_recorded
        )
        levels = await replay_dead_letters(
            js,
            subjects.MEMORY_CLASSIFICATIONS_CONSUMER,
            TurnClassified,
            handlers.on_turn_classified,
        )
        for durable, result in (
            (subjects.MEMORY_TURNS_CONSUMER, turns),
            (subjects.MEMORY_CLASSIFICATIONS_CONSUMER, levels),
        ):
            report[durable] = {
                "replayed": result.replayed,
                "failed": result.failed,
                "waiting": result.waiting,
            }
    return report


def main() -> None:
    """Replay, print the report, exit 1 if anything is still waiting."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count-only", action="store_true", help="only count what is waiting")
    args = parser.parse_args()
    settings = MemorySettings()
    configure_logging("memory-replay", settings.log_level)
    report = asyncio.run(replay(settings, count_only=args.count_only))
    print(json.dumps(report))
    sys.exit(1 if any(entry["waiting"] for entry in report.values()) else 0)


if __name__ == "__main__":
    main()
