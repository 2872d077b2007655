"""SQL for the finalizer schema. Status only moves forward; completed and failed are final."""

from __future__ import annotations

from typing import Any

from opencouch.contracts.finalizer import FinalizationRecord
from opencouch.contracts.voice_api import Feedback
from opencouch.runtime.postgres import DictPool


def _record(row: dict[str, Any] | None) -> FinalizationRecord | None:
    return FinalizationRecord.model_validate(row) if row else None


class FinalizationStore:
    """Reads and writes of the finalizations table."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def get(self, session_id: str) -> FinalizationRecord | None:
        """The session's finalization, if the finalizer has seen it end."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT session_id, thread_id, status, turn_count, summary, themes, mood_opened,
                       mood_closed, open_loops, resolved_threads, detail, updated_at
                FROM finalizer.finalizations WHERE session_id = %s
                """,
                (session_id,),
            )
            return _record(await cursor.fetchone())

    async def begin(self, session_id: str, thread_id: str) -> FinalizationRecord:
        """Mark the session in progress, unless it already reached a final status."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                INSERT INTO finalizer.finalizations (session_id, thread_id, status, attempts)
                VALUES (%s, %s, 'in_progress', 1)
                ON CONFLICT (session_id) DO UPDATE
                SET attempts = finalizations.attempts + 1,
                    status = CASE WHEN finalizations.status IN ('completed', 'failed')
                                  THEN finalizations.status ELSE 'in_progress' END,
                    updated_at = now()
                RETURNING session_id, thread_id, status, turn_count, summary, themes, mood_opened,
                       mood_closed, open_loops, resolved_threads, detail, updated_at
                """,
                (session_id, thread_id),
            )
            record = _record(await cursor.fetchone())
        assert record is not None  # INSERT ... RETURNING always yields the row
        return record

    async def complete(
        self, session_id: str, *, turn_count: int, detail: str, feedback: Feedback | None
    ) -> FinalizationRecord | None:
        """Finish the session once, with its feedback; None if it was already final."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                """
                UPDATE finalizer.finalizations
                SET status = 'completed', turn_count = %s, detail = %s, updated_at = now()
                WHERE session_id = %s AND status = 'in_progress'
                RETURNING session_id, thread_id, status, turn_count, summary, themes, mood_opened,
                       mood_closed, open_loops, resolved_threads, detail, updated_at
                """,
                (turn_count, detail, session_id),
            )
            record = _record(await cursor.fetchone())
            if record is not None and feedback is not None:
                await conn.execute(
                    """
                    INSERT INTO finalizer.session_feedback (session_id, label, turn_count)
                    VALUES (%s, %s, %s) ON CONFLICT (session_id) DO NOTHING
                    """,
                    (session_id, feedback.value, turn_count),
                )
        return record

    async def fail(self, session_id: str, detail: str) -> FinalizationRecord | None:
        """Give up on the session; None if it was already final."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                UPDATE finalizer.finalizations
                SET status = 'failed', detail = %s, updated_at = now()
                WHERE session_id = %s AND status IN ('pending', 'in_progress')
                RETURNING session_id, thread_id, status, turn_count, summary, themes, mood_opened,
                       mood_closed, open_loops, resolved_threads, detail, updated_at
                """,
                (detail, session_id),
            )
            return _record(await cursor.fetchone())
