"""Staged deletions: what the user is about to delete, held in Redis until they confirm.

One per voice session, replaced by a newer one, gone after a few minutes. It holds ids only,
never the memory's words. Taking it is atomic (GETDEL), so confirming twice deletes once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from opencouch.contracts.memory import MemoryKind


def _staged(session_id: str) -> str:
    return f"memory:v1:staged-deletion:{session_id}"


@dataclass(frozen=True)
class StagedDeletion:
    """One memory to delete: a saved row (``row_id``) or a fact held for this session."""

    kind: MemoryKind
    owner: str
    row_id: int | None = None
    held_key: str | None = None


class StagedDeletions:
    """Per-session staged deletions, in Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def stage(self, session_id: str, deletion: StagedDeletion) -> None:
        """Stage ``deletion``, replacing whatever the session had staged."""
        await self._redis.set(_staged(session_id), json.dumps(asdict(deletion)), ex=self._ttl)

    async def take(self, session_id: str) -> StagedDeletion | None:
        """Remove and return the staged deletion; only one caller ever gets it."""
        raw: bytes | str | None = await self._redis.getdel(_staged(session_id))
        return StagedDeletion(**json.loads(raw)) if raw else None

    async def cancel(self, session_id: str) -> bool:
        """Drop the staged deletion; False when nothing was staged."""
        return bool(await self._redis.delete(_staged(session_id)))
