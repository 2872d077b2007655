"""``python -m opencouch.tools.replay_dead_letters``: screen the turns (and apply the erasures)
that went to dead letters.

The crisis screening consumer gives a turn up after its last retry (Postgres or JetStream down
for longer than the retry window, say); so does the erasure consumer an erasure. Until they are
replayed, a turn at risk has no crisis-log row and no published level, and an erased owner's
tool state stays. Once the cause is fixed, this hands each one to the same handler the consumer
uses, removes those it handled, and prints what it did as one JSON line. Handlers are
idempotent, so running it twice does each once. Exits 1 when some are still waiting.

    python -m opencouch.tools.replay_dead_letters [--count-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from opencouch.contracts import subjects
from opencouch.contracts.events import OwnerErased, TurnRecorded
from opencouch.runtime.jetstream import (
    count_dead_letters,
    ensure_events_stream,
    replay_dead_letters,
)
from opencouch.runtime.logs import configure_logging
from opencouch.runtime.messaging import nats_connection
from opencouch.runtime.postgres import connection_pool
from opencouch.tools.erasure import Erasure
from opencouch.tools.screening import CrisisScreening
from opencouch.tools.session_state import SessionState
from opencouch.tools.settings import ToolsSettings
from opencouch.tools.store import ToolsStore

DURABLES = (subjects.TOOLS_CRISIS_CONSUMER, subjects.TOOLS_ERASURE_CONSUMER)


async def replay(settings: ToolsSettings, *, count_only: bool) -> dict[str, dict[str, int]]:
    """Replay (or only count) the dead letters of the tools service's two consumers."""
    report: dict[str, dict[str, int]] = {}
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings.nats_url, f"{subjects.TOOLS_SERVICE}-replay")
        )
        js = await ensure_events_stream(nc)
        if count_only:
            for durable in DURABLES:
                report[durable] = {"waiting": await count_dead_letters(js, durable)}
            return report
        pool = await stack.enter_async_context(connection_pool(settings.database_url, max_size=2))
        redis = Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        stack.push_async_callback(redis.aclose)
        store = ToolsStore(pool, settings.db_timeout_seconds)
        state = SessionState(redis, settings.session_state_ttl_seconds)
        screened = await replay_dead_letters(
            js,
            subjects.TOOLS_CRISIS_CONSUMER,
            TurnRecorded,
            CrisisScreening(store, state, js).on_turn_recorded,
        )
        erased = await replay_dead_letters(
            js, subjects.TOOLS_ERASURE_CONSUMER, OwnerErased, Erasure(store, state).on_owner_erased
        )
        for durable, result in zip(DURABLES, (screened, erased), strict=True):
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
    settings = ToolsSettings()
    configure_logging("tools-replay", settings.log_level)
    report = asyncio.run(replay(settings, count_only=args.count_only))
    print(json.dumps(report))
    sys.exit(1 if any(entry["waiting"] for entry in report.values()) else 0)


if __name__ == "__main__":
    main()
