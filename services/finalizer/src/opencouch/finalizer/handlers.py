"""Thin handlers: the status request, the session-end consumer and the erasure consumer."""

from __future__ import annotations

from opencouch.contracts.events import OwnerErased, SessionEnded
from opencouch.contracts.finalizer import FinalizationStatusReply, FinalizationStatusRequest
from opencouch.finalizer.erasure import Erasure
from opencouch.finalizer.finalization import Finalizer
from opencouch.finalizer.store import FinalizationStore


class FinalizerHandlers:
    """The finalizer's NATS requests and JetStream events, each handed to its domain."""

    def __init__(self, store: FinalizationStore, finalizer: Finalizer, erasure: Erasure) -> None:
        self._store = store
        self._finalizer = finalizer
        self._erasure = erasure

    async def status(self, req: FinalizationStatusRequest) -> FinalizationStatusReply:
        """The session's finalization record, or None if its end has not been seen."""
        return FinalizationStatusReply(record=await self._store.get(req.session_id))

    async def on_session_ended(self, event: SessionEnded) -> None:
        """Finalize the session once (retried by JetStream while memory catches up)."""
        await self._finalizer.finalize(event)

    async def on_give_up(self, event: SessionEnded) -> None:
        """Retries ran out: record the failure so status queries stop saying in progress."""
        await self._finalizer.give_up(event)

    async def on_owner_erased(self, event: OwnerErased) -> None:
        """Forget the erased owner's sessions."""
        await self._erasure.on_owner_erased(event)
