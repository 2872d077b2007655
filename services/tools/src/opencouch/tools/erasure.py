"""Forgetting: every piece of tool state of an erased owner's sessions, and the Redis state of
a session as soon as it closes.

The crisis log is not touched: it holds no identity to find (opaque hashes only) and is the one
record kept by design.
"""

from __future__ import annotations

import logging

from opencouch.contracts.events import OwnerErased, SessionClosed
from opencouch.tools.session_state import SessionState
from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)


class Erasure:
    """Handles ``OwnerErased`` from JetStream and ``SessionClosed`` from core NATS; repeating
    either is harmless."""

    def __init__(self, store: ToolsStore, state: SessionState) -> None:
        self._store = store
        self._state = state

    async def on_owner_erased(self, event: OwnerErased) -> None:
        """Delete the sessions' exercise runs (Postgres) and tool state (Redis)."""
        await self._state.forget(event.session_ids)
        runs = await self._store.forget_exercise_runs(event.session_ids)
        log.info(
            "owner's tool state forgotten",
            extra={"sessions": len(event.session_ids), "exercise_runs": runs},
        )

    async def on_session_closed(self, event: SessionClosed) -> None:
        """Drop the closed session's crisis lookup and exercise from Redis now, rather than when
        they expire: an incognito session's state lasts no longer than the session. A persistent
        session's exercise run stays in Postgres until the retention job's purge, and its
        screening memory until it expires (see ``forget_tool_calls_state``). Best effort: if
        this message is missed, the state still expires with the session."""
        await self._state.forget_tool_calls_state(event.session_id)
        log.debug("closed session's tool state dropped", extra={"session_id": event.session_id})
