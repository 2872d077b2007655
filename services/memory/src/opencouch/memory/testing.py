"""Test support: a client that speaks to the memory service as the gateway and finalizer do,
and conversations that produce the turns and tool contexts a voice session would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pydantic import BaseModel

from opencouch.contracts import subjects
from opencouch.contracts.common import MemoryMode, TranscriptLine
from opencouch.contracts.events import TurnClassified, TurnRecorded
from opencouch.contracts.memory import (
    CommitMemoryCandidatesReply,
    CommitMemoryCandidatesRequest,
    SessionSummary,
    SessionTranscriptReply,
    SessionTranscriptRequest,
)
from opencouch.contracts.tools import (
    TOOL_CATALOG,
    ToolCallContext,
    ToolCallReply,
    ToolCallRequest,
)
from opencouch.contracts.voice_api import TurnOutcome
from opencouch.runtime.jetstream import caught_up, publish_event
from opencouch.runtime.messaging import request

ReplyT = TypeVar("ReplyT", bound=BaseModel)


def new_session_id() -> str:
    """A fresh voice session id, as the gateway mints them."""
    return f"vs_{uuid.uuid4().hex}"


def new_id(kind: str) -> str:
    """A fresh client-chosen id (thread, user)."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@dataclass
class Conversation:
    """One voice session as a caller sees it: ids, mode, and what the user said so far."""

    thread_id: str = field(default_factory=lambda: new_id("thread"))
    user_id: str | None = field(default_factory=lambda: new_id("user"))
    session_id: str = field(default_factory=new_session_id)
    memory_mode: MemoryMode = MemoryMode.PERSISTENT
    transcript: list[TranscriptLine] = field(default_factory=list)
    turns: int = 0

    def next_session(self) -> Conversation:
        """A later voice session of the same user and thread."""
        return Conversation(self.thread_id, self.user_id, memory_mode=self.memory_mode)

    def commit_request(
        self, *, save: bool = True, summary: SessionSummary | None = None
    ) -> CommitMemoryCandidatesRequest:
        """The finalizer's commit of this session's candidates (a drop with ``save=False``)."""
        return CommitMemoryCandidatesRequest(
            session_id=self.session_id,
            thread_id=self.thread_id,
            user_id=self.user_id,
            memory_mode=self.memory_mode,
            save=save,
            summary=summary,
        )

    def context(self, current_user_message: str = "") -> ToolCallContext:
        """The tool-call context the gateway builds for this session."""
        return ToolCallContext(
            session_id=self.session_id,
            thread_id=self.thread_id,
            user_id=self.user_id,
            memory_mode=self.memory_mode,
            current_user_message=current_user_message,
            transcript=self.transcript[-20:],
        )

    def turn(
        self,
        user_text: str,
        assistant_text: str = "I hear you.",
        *,
        client_turn_id: str | None = None,
        started_at: datetime | None = None,
    ) -> TurnRecorded:
        """The TurnRecorded the gateway would publish for this exchange."""
        self.turns += 1
        self.transcript += [
            TranscriptLine(role="user", text=user_text),
            TranscriptLine(role="assistant", text=assistant_text),
        ]
        now = datetime.now(UTC)
        return TurnRecorded(
            session_id=self.session_id,
            thread_id=self.thread_id,
            user_id=self.user_id,
            client_turn_id=client_turn_id or f"turn-{self.turns}",
            user_text=user_text,
            assistant_text=assistant_text,
            started_at=started_at or now - timedelta(seconds=5),
            route="therapeutic",
            response_style="voice",
            outcome=TurnOutcome.COMPLETED,
            recorded_at=now,
        )


@dataclass
class MemoryClient:
    """Talks to the memory service over NATS and JetStream, as the gateway and finalizer do."""

    nc: NatsClient
    js: JetStreamContext
    database_url: str

    async def call(
        self, tool: str, conversation: Conversation, said: str = "", **arguments: Any
    ) -> ToolCallReply:
        """Call a memory tool as the gateway would, ``said`` being the current user message."""
        spec = TOOL_CATALOG[tool]
        return await request(
            self.nc,
            spec.subject,
            ToolCallRequest(
                tool_name=tool, arguments=arguments, context=conversation.context(said)
            ),
            ToolCallReply,
            timeout=15,
        )

    async def ask(self, subject: str, payload: BaseModel, reply_model: type[ReplyT]) -> ReplyT:
        """A request to one of memory's endpoints."""
        return await request(self.nc, subject, payload, reply_model, timeout=30)

    async def commit(
        self,
        conversation: Conversation,
        *,
        save: bool = True,
        summary: SessionSummary | None = None,
    ) -> CommitMemoryCandidatesReply:
        """End the session as the finalizer does: commit what it held (and its summary)."""
        return await self.ask(
            subjects.MEMORY_COMMIT_CANDIDATES,
            conversation.commit_request(save=save, summary=summary),
            CommitMemoryCandidatesReply,
        )

    async def publish(self, turn: TurnRecorded, *, dedup_id: str | None = None) -> int:
        """Publish a turn as the gateway does; another ``dedup_id`` makes a new message."""
        return await publish_event(
            self.js, subjects.TURN_RECORDED, turn, dedup_id=dedup_id or turn.dedup_id
        )

    async def classify(
        self, conversation: Conversation, client_turn_id: str, level: int, reason: str = "test"
    ) -> None:
        """Publish a turn's crisis level as the tools service's screening does."""
        event = TurnClassified(
            session_id=conversation.session_id,
            thread_id=conversation.thread_id,
            client_turn_id=client_turn_id,
            level=level,
            reason=reason,
            classified_at=datetime.now(UTC),
        )
        await publish_event(self.js, subjects.TURN_CLASSIFIED, event, dedup_id=event.dedup_id)

    async def idle(self, durable: str) -> None:
        """Wait until the consumer has handled everything published so far."""
        await eventually(lambda: caught_up(self.js, durable))

    async def transcript(self, session_id: str) -> SessionTranscriptReply:
        """The session's stored turns, as the finalizer asks for them."""
        return await self.ask(
            subjects.MEMORY_SESSION_TRANSCRIPT,
            SessionTranscriptRequest(session_id=session_id),
            SessionTranscriptReply,
        )

    async def stored(self, session_id: str, count: int, timeout: float = 60) -> None:
        """Wait until the session has ``count`` stored turns (straight from Postgres)."""

        async def check() -> bool:
            return (
                len(self.rows("SELECT 1 FROM memory.turns WHERE session_id = %s", session_id))
                >= count
            )

        await eventually(check, timeout)

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows straight from Postgres, to check what is (not) stored."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Poll until ``check`` holds; generous, never an assertion on speed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)
