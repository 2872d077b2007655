"""What the finalizer asks the memory service over NATS: counts, transcript pages, the commit.

Memory owns transcripts and memories; the finalizer never reads its tables.
"""

from __future__ import annotations

from typing import Final

from nats.aio.client import Client as NatsClient

from opencouch.contracts import subjects
from opencouch.contracts.memory import (
    CommitMemoryCandidatesReply,
    CommitMemoryCandidatesRequest,
    SessionTranscriptReply,
    SessionTranscriptRequest,
    SessionTurnCountsReply,
    SessionTurnCountsRequest,
    StoredTurn,
)
from opencouch.runtime.messaging import request

MAX_PAGES: Final = 10_000
"""A bound on a transcript's pages, so a memory that never stops paging cannot hold us."""


class MemoryLink:
    """Requests to the memory service, each bounded by ``timeout`` seconds.

    Each raises ``ServiceError`` when memory does not answer or refuses.
    """

    def __init__(self, nc: NatsClient, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def counts(self, session_id: str) -> SessionTurnCountsReply:
        """How many of the session's turns memory stored and classified: counts, no text."""
        return await request(
            self._nc,
            subjects.MEMORY_SESSION_COUNTS,
            SessionTurnCountsRequest(session_id=session_id),
            SessionTurnCountsReply,
            timeout=self._timeout,
        )

    async def transcript(self, session_id: str) -> list[StoredTurn]:
        """Every stored turn of the session in speech order, fetched a page at a time."""
        turns: list[StoredTurn] = []
        after = None
        for _ in range(MAX_PAGES):
            page = await request(
                self._nc,
                subjects.MEMORY_SESSION_TRANSCRIPT,
                SessionTranscriptRequest(session_id=session_id, after=after),
                SessionTranscriptReply,
                timeout=self._timeout,
            )
            turns += page.turns
            if page.after is None:
                break
            after = page.after
        return turns

    async def commit(self, commit: CommitMemoryCandidatesRequest) -> CommitMemoryCandidatesReply:
        """Commit (or, unsaved, drop) the session's memory candidates; idempotent per session."""
        return await request(
            self._nc,
            subjects.MEMORY_COMMIT_CANDIDATES,
            commit,
            CommitMemoryCandidatesReply,
            timeout=self._timeout,
        )
