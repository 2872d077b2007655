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

from collections.abc import Sequence
from contextlib import AsyncExitStack

from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.events import OwnerErased, TurnRecorded
from opencouch.runtime.postgres import connection_pool
from opencouch.runtime.redis_client import redis_client
from opencouch.runtime.replay import (
    DeadLetterHandler,
    Report,
    replay_consumers,
    run_replay_command,
)
from opencouch.tools.erasure import Erasure
from opencouch.tools.screening import CrisisScreening
from opencouch.tools.session_state import SessionState
from opencouch.tools.settings import ToolsSettings
from opencouch.tools.store import ToolsStore

DURABLES = (subjects.TOOLS_CRISIS_CONSUMER, subjects.TOOLS_ERASURE_CONSUMER)


async def replay(settings: ToolsSettings, *, count_only: bool) -> Report:
    """Replay (or only count) the dead letters of the tools service's two consumers."""

    async def handlers(stack: AsyncExitStack, js: JetStreamContext) -> Sequence[DeadLetterHandler]:
        pool = await stack.enter_async_context(connection_pool(settings.database_url, max_size=2))
        redis = await stack.enter_async_context(
            redis_client(settings.redis_url, timeout=settings.redis_timeout_seconds)
        )
        store = ToolsStore(pool, settings.db_timeout_seconds)
        state = SessionState(redis, settings.session_state_ttl_seconds)
        return [
            DeadLetterHandler(
                subjects.TOOLS_CRISIS_CONSUMER,
                TurnRecorded,
                CrisisScreening(store, state, js).on_turn_recorded,
            ),
            DeadLetterHandler(
                subjects.TOOLS_ERASURE_CONSUMER, OwnerErased, Erasure(store, state).on_owner_erased
            ),
        ]

    return await replay_consumers(
        settings.nats_url,
        f"{subjects.TOOLS_SERVICE}-replay",
        DURABLES,
        handlers,
        count_only=count_only,
    )


def main() -> None:
    """Replay, print the report, exit 1 if anything is still waiting."""
    settings = ToolsSettings()
    run_replay_command(
        __doc__,
        "tools",
        settings.log_level,
        lambda count_only: replay(settings, count_only=count_only),
    )


if __name__ == "__main__":
    main()
