"""``python -m opencouch.memory.replay_dead_letters``: store the turns that went to dead letters.

A turn goes to the dead letters when it could not be stored through every retry (Postgres down
for longer than the retry window, say). Once the cause is fixed, this hands each one to the
same handler the consumer uses, removes those it stored, and prints what it did as one JSON
line. Turns are stored once however often this runs. Exits 1 when some are still waiting.

    python -m opencouch.memory.replay_dead_letters [--count-only]
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.events import TurnClassified, TurnRecorded
from opencouch.memory.service import build
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.postgres import connection_pool
from opencouch.runtime.redis_client import redis_client
from opencouch.runtime.replay import (
    DeadLetterHandler,
    Report,
    replay_consumers,
    run_replay_command,
)

DURABLES = (subjects.MEMORY_TURNS_CONSUMER, subjects.MEMORY_CLASSIFICATIONS_CONSUMER)


async def replay(settings: MemorySettings, *, count_only: bool) -> Report:
    """Replay (or only count) the dead letters of memory's two consumers."""

    async def handlers(stack: AsyncExitStack, js: JetStreamContext) -> Sequence[DeadLetterHandler]:
        pool = await stack.enter_async_context(
            connection_pool(settings.database_url, max_size=2, timeout=settings.db_timeout_seconds)
        )
        redis = await stack.enter_async_context(
            redis_client(settings.redis_url, timeout=settings.redis_timeout_seconds)
        )
        memory, _, _ = build(settings, pool, redis, js)
        return [
            DeadLetterHandler(
                subjects.MEMORY_TURNS_CONSUMER, TurnRecorded, memory.on_turn_recorded
            ),
            DeadLetterHandler(
                subjects.MEMORY_CLASSIFICATIONS_CONSUMER, TurnClassified, memory.on_turn_classified
            ),
        ]

    return await replay_consumers(
        settings.nats_url,
        f"{subjects.MEMORY_SERVICE}-replay",
        DURABLES,
        handlers,
        count_only=count_only,
    )


def main() -> None:
    """Replay, print the report, exit 1 if anything is still waiting."""
    settings = MemorySettings()
    run_replay_command(
        __doc__,
        "memory",
        settings.log_level,
        lambda count_only: replay(settings, count_only=count_only),
    )


if __name__ == "__main__":
    main()
