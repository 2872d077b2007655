"""Forgetting an owner: drop everything the finalizer keeps of their sessions.

Memory has already erased its part when ``OwnerErased`` arrives. Here the finalizations go
(arcs, feedback, owed reports with them), the sessions are remembered as erased so that a late
or repeated end writes nothing again, and any ``session.finalized`` event the stream still
holds of them (results went through it before they left it) is erased.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext

from opencouch.contracts import subjects
from opencouch.contracts.events import OwnerErased
from opencouch.finalizer.store import FinalizationStore
from opencouch.runtime.jetstream import forget_events, stored_events

log = logging.getLogger(__name__)


class Erasure:
    """Handles ``OwnerErased`` from JetStream; repeating it is harmless."""

    def __init__(self, store: FinalizationStore, js: JetStreamContext) -> None:
        self._store = store
        self._js = js

    async def on_owner_erased(self, event: OwnerErased) -> None:
        """Delete the sessions' finalizations and the events that carried their arcs."""
        finalizations = await self._store.erase(event.session_ids)
        sequences = [
            sequence
            for session_id in event.session_ids
            async for sequence, _ in stored_events(
                self._js, subjects.stored_session_finalized(session_id)
            )
        ]
        messages = await forget_events(self._js, sequences)
        log.info(
            "owner's finalizations forgotten",
            extra={
                "sessions": len(event.session_ids),
                "finalizations": finalizations,
                "stream_messages": messages,
            },
        )
