"""Thin handlers: validated request in, store call, contract out."""

from __future__ import annotations

import logging

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.events import TurnRecorded
from opencouch.contracts.memory import (
    MemoryContextReply,
    MemoryContextRequest,
    MemoryStatusOutput,
    SessionTranscriptReply,
    SessionTranscriptRequest,
)
from opencouch.contracts.tools import NoArguments, ToolCallContext
from opencouch.memory.context import compose_context
from opencouch.memory.store import MemoryStore, owner_key

log = logging.getLogger(__name__)


class MemoryHandlers:
    """The memory service's requests and its turn consumer, over one store."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def memory_context(self, request: MemoryContextRequest) -> MemoryContextReply:
        """Nothing in incognito; otherwise preferences, the recall flag and the thread size."""
        if request.memory_mode is MemoryMode.INCOGNITO:
            return MemoryContextReply(memory_mode=MemoryMode.INCOGNITO)
        owner = owner_key(request.thread_id, request.user_id)
        recall = await self._store.proactive_recall_enabled(owner)
        return MemoryContextReply(
            memory_mode=MemoryMode.PERSISTENT,
            context_text=compose_context(await self._store.response_rules(owner), recall),
            proactive_recall_enabled=recall,
            message_count=await self._store.message_count(request.thread_id),
        )

    async def session_transcript(self, request: SessionTranscriptRequest) -> SessionTranscriptReply:
        """Every stored turn of a session, oldest first."""
        thread_id, turns = await self._store.session_turns(request.session_id)
        return SessionTranscriptReply(
            session_id=request.session_id, thread_id=thread_id, turns=turns
        )

    async def show_memory_status(
        self, _: NoArguments, context: ToolCallContext
    ) -> MemoryStatusOutput:
        """The ``show_memory_status`` tool: is memory on, and what does it keep."""
        if context.memory_mode is MemoryMode.INCOGNITO:
            status = MemoryStatusOutput(
                memory_mode=MemoryMode.INCOGNITO,
                memory_enabled=False,
                proactive_recall_enabled=False,
                kept=[],
                summary=(
                    "Memory is off: this is an incognito conversation. Nothing said here is "
                    "saved after it ends."
                ),
            )
        else:
            recall = await self._store.proactive_recall_enabled(
                owner_key(context.thread_id, context.user_id)
            )
            status = MemoryStatusOutput(
                memory_mode=MemoryMode.PERSISTENT,
                memory_enabled=True,
                proactive_recall_enabled=recall,
                kept=[
                    "the transcript of this conversation",
                    "a short summary when the session ends",
                    "preferences the user explicitly asks to save",
                ],
                summary=(
                    "Memory is on. This conversation is saved, and saved memory can be shown "
                    "or deleted on request."
                ),
            )
        return status

    async def on_turn_recorded(self, turn: TurnRecorded) -> None:
        """Store a turn from the stream; a duplicate is a no-op, so redelivery is safe."""
        inserted = await self._store.record_turn(turn)
        log.info(
            "turn stored" if inserted else "turn already stored",
            extra={"session_id": turn.session_id, "client_turn_id": turn.client_turn_id},
        )
