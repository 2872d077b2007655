"""Forgetting an owner: drop every piece of tool state kept for their sessions.

The crisis log is not touched: it holds no identity to find (opaque hashes only) and is the one
record kept by design.
"""

from __future__ import annotations

import logging

from opencouch.contracts.events import OwnerErased
from opencouch.tools.session_state import SessionState
from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)


class Erasure:
    """Handles ``OwnerErased`` from JetStream; repeating it is harmless."""

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
