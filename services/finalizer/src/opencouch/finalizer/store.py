"""SQL for the finalizer schema. Parameterised statements only.

A finalization's status moves pending -> in_progress -> completed | failed, and only through
conditional updates (``WHERE status = ...``), so however many replicas handle the same end, one
result is written; completed and failed are final. A session whose owner was erased is
remembered by id, and nothing is written for it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from opencouch.contracts.finalizer import FinalizationRecord
from opencouch.contracts.voice_api import Feedback
from opencouch.finalizer.arc import SessionArc
from opencouch.runtime.postgres import DictPool

_COLUMN_NAMES: Final = (
    "session_id", "thread_id", "status", "turn_count", "summary", "themes", "mood_opened",
    "mood_closed", "open_loops", "resolved_threads", "summary_method", "duration_seconds",
    "peak_crisis_level", "memories_committed", "detail", "finalized_at", "updated_at",
)  # fmt: skip
_COLUMNS: Final = ", ".join(_COLUMN_NAMES)
# Advisory locks of the finalizer: (this key, hashtext(session_id)).
_LOCK_SPACE: Final = 0x6F63_6600
_NOT_ERASED: Final = (
    "NOT EXISTS (SELECT 1 FROM finalizer.erased_sessions e WHERE e.session_id = %(session)s)"
)


def _record(row: dict[str, Any] | None) -> FinalizationRecord | None:
    return FinalizationRecord.model_validate(row) if row else None


@dataclass(frozen=True)
class Attempt:
    """One replica's turn at finalizing a session."""

    number: int
    """How many attempts there have been, this one included."""
    waited_seconds: float
    """Since the finalizer first saw the session end (by the database's clock)."""
    arc: SessionArc | None
    """An arc an earlier attempt already drafted, to keep rather than draft again."""


@dataclass(frozen=True)
class Completion:
    """What a completed finalization records."""

    turn_count: int
    duration_seconds: int | None
    peak_crisis_level: int | None
    memories_committed: int
    arc: SessionArc | None
    detail: str


class FinalizationStore:
    """The finalizations, their feedback, and the erased sessions."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def get(self, session_id: str) -> FinalizationRecord | None:
        """The session's finalization, if the finalizer has seen it end."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM finalizer.finalizations WHERE session_id = %s",
                (session_id,),
            )
            return _record(await cursor.fetchone())

    async def open(self, session_id: str, thread_id: str) -> FinalizationRecord | None:
        """The session's finalization, created pending if new; None if it was erased."""
        params = {"session": session_id, "thread": thread_id}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                f"""
                INSERT INTO finalizer.finalizations (session_id, thread_id, status)
                SELECT %(session)s, %(thread)s, 'pending' WHERE {_NOT_ERASED}
                ON CONFLICT (session_id) DO NOTHING
                """,
                params,
            )
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM finalizer.finalizations "
                f"WHERE session_id = %(session)s AND {_NOT_ERASED}",
                params,
            )
            return _record(await cursor.fetchone())

    @asynccontextmanager
    async def exclusive(self, session_id: str) -> AsyncIterator[bool]:
        """Whether this replica holds the session's lock for the block (False: another does).

        A transaction-scoped advisory lock: released when the block ends, and by Postgres
        itself when the replica dies, so a killed replica never holds a session.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS held",
                (_LOCK_SPACE, session_id),
            )
            row = await cursor.fetchone()
            yield bool(row and row["held"])

    async def start(self, session_id: str) -> Attempt | None:
        """Count an attempt and mark it in progress; None when it is final (or erased)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                UPDATE finalizer.finalizations
                SET status = 'in_progress', attempts = attempts + 1, waiting_for = NULL,
                    updated_at = now()
                WHERE session_id = %s AND status IN ('pending', 'in_progress')
                RETURNING attempts, extract(epoch FROM now() - created_at) AS waited,
                          summary, themes, mood_opened, mood_closed, open_loops,
                          resolved_threads, summary_method
                """,
                (session_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        arc = None
        if row["summary"] is not None and row["summary_method"] is not None:
            arc = SessionArc(
                summary=row["summary"],
                themes=tuple(row["themes"]),
                mood_opened=row["mood_opened"],
                mood_closed=row["mood_closed"],
                open_loops=tuple(row["open_loops"]),
                resolved_threads=tuple(row["resolved_threads"]),
                method=row["summary_method"],
            )
        return Attempt(int(row["attempts"]), float(row["waited"]), arc)

    async def note_wait(self, session_id: str, reason: str) -> None:
        """Say what the session is waiting for (our words only, never user text)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE finalizer.finalizations SET waiting_for = %s, updated_at = now() "
                "WHERE session_id = %s AND status = 'in_progress'",
                (reason, session_id),
            )

    async def note_seen(self, session_id: str, stored_turns: int, peak: int | None) -> None:
        """Keep what memory held of the session so far (its stored turns and their peak crisis
        level): a session that then fails, whatever it waited on, is still reported with them,
        and an imminent-risk turn among them does not read as none."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE finalizer.finalizations SET turn_count = %s, peak_crisis_level = %s, "
                "updated_at = now() WHERE session_id = %s AND status = 'in_progress'",
                (stored_turns, peak, session_id),
            )

    async def keep_arc(self, session_id: str, arc: SessionArc) -> bool:
        """Keep a drafted arc, so a later attempt reuses it; False if it may not be kept."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"""
                UPDATE finalizer.finalizations
                SET summary = %(summary)s, themes = %(themes)s, mood_opened = %(opened)s,
                    mood_closed = %(closed)s, open_loops = %(loops)s,
                    resolved_threads = %(resolved)s, summary_method = %(method)s,
                    updated_at = now()
                WHERE session_id = %(session)s AND status = 'in_progress' AND {_NOT_ERASED}
                """,
                {"session": session_id, **_arc_params(arc)},
            )
            return cursor.rowcount == 1

    async def is_erased(self, session_id: str) -> bool:
        """Whether the session's owner asked to be forgotten."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM finalizer.erased_sessions WHERE session_id = %s", (session_id,)
            )
            return await cursor.fetchone() is not None

    async def complete(
        self,
        session_id: str,
        completion: Completion,
        *,
        feedback: Feedback | None,
        feedback_days: int,
        report: bool,
    ) -> FinalizationRecord | None:
        """Complete the session once, with its feedback and its report owed; None if it was
        final already (or erased)."""
        params = {
            "session": session_id,
            "turns": completion.turn_count,
            "duration": completion.duration_seconds,
            "peak": completion.peak_crisis_level,
            "memories": completion.memories_committed,
            "detail": completion.detail,
            **_arc_params(completion.arc),
        }
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                f"""
                UPDATE finalizer.finalizations
                SET status = 'completed', turn_count = %(turns)s,
                    duration_seconds = %(duration)s, peak_crisis_level = %(peak)s,
                    memories_committed = %(memories)s, detail = %(detail)s,
                    summary = %(summary)s, themes = %(themes)s, mood_opened = %(opened)s,
                    mood_closed = %(closed)s, open_loops = %(loops)s,
                    resolved_threads = %(resolved)s, summary_method = %(method)s,
                    waiting_for = NULL, finalized_at = now(), updated_at = now()
                WHERE session_id = %(session)s AND status = 'in_progress' AND {_NOT_ERASED}
                RETURNING {_COLUMNS}
                """,
                params,
            )
            record = _record(await cursor.fetchone())
            if record is None:
                return None
            if feedback is not None:
                await _keep_feedback(
                    conn, session_id, feedback, completion.turn_count, feedback_days
                )
            if report:
                await _owe_report(conn, session_id)
        return record

    async def fail(
        self,
        session_id: str,
        *,
        report: bool,
        feedback: Feedback | None = None,
        feedback_days: int = 1,
        turn_count: int = 0,
    ) -> FinalizationRecord | None:
        """Give up on the session, saying what it waited for, and keep the person's feedback
        all the same (over ``turn_count`` turns); None if it was already final."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                f"""
                UPDATE finalizer.finalizations
                SET status = 'failed', finalized_at = now(), updated_at = now(),
                    detail = 'Finalization failed: '
                             || COALESCE(waiting_for, 'it could not complete')
                             || '. The transcript is kept.'
                WHERE session_id = %(session)s AND status IN ('pending', 'in_progress')
                  AND {_NOT_ERASED}
                RETURNING {_COLUMNS}
                """,
                {"session": session_id},
            )
            record = _record(await cursor.fetchone())
            if record is not None and feedback is not None:
                await _keep_feedback(conn, session_id, feedback, turn_count, feedback_days)
            if record is not None and report:
                await _owe_report(conn, session_id)
        return record

    async def erase(self, session_ids: Sequence[str]) -> int:
        """Forget these sessions (finalization, arc, feedback, reports) and refuse them from
        now on; returns how many finalizations were deleted."""
        ids = list(session_ids)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO finalizer.erased_sessions (session_id) "
                "SELECT unnest(%s::text[]) ON CONFLICT (session_id) DO NOTHING",
                (ids,),
            )
            cursor = await conn.execute(
                "DELETE FROM finalizer.finalizations WHERE session_id = ANY(%s)", (ids,)
            )
            return cursor.rowcount

    async def apply_retention(self, erased_days: int, arc_hours: float) -> dict[str, int]:
        """Delete expired feedback and old erasure markers; sweep anything of erased sessions;
        drop the arcs finalized more than ``arc_hours`` ago whose report is not still owed."""
        async with self._pool.connection() as conn, conn.transaction():
            arcs = await conn.execute(
                """
                UPDATE finalizer.finalizations f
                SET summary = NULL, themes = '[]'::jsonb, mood_opened = NULL, mood_closed = NULL,
                    open_loops = '[]'::jsonb, resolved_threads = '[]'::jsonb
                WHERE f.summary IS NOT NULL
                  AND f.finalized_at < now() - make_interval(secs => %s)
                  AND NOT EXISTS (
                      SELECT 1 FROM finalizer.webhook_deliveries d
                      WHERE d.session_id = f.session_id AND d.status = 'pending'
                  )
                """,
                (arc_hours * 3600,),
            )
            feedback = await conn.execute(
                "DELETE FROM finalizer.session_feedback WHERE expires_at < now()"
            )
            late = await conn.execute(
                "DELETE FROM finalizer.finalizations f USING finalizer.erased_sessions e "
                "WHERE f.session_id = e.session_id"
            )
            markers = await conn.execute(
                "DELETE FROM finalizer.erased_sessions "
                "WHERE erased_at < now() - make_interval(days => %s)",
                (erased_days,),
            )
            return {
                "arcs": arcs.rowcount,
                "feedback": feedback.rowcount,
                "erased_finalizations": late.rowcount,
                "erasure_markers": markers.rowcount,
            }


def _arc_params(arc: SessionArc | None) -> dict[str, Any]:
    return {
        "summary": arc.summary if arc else None,
        "themes": Jsonb(list(arc.themes) if arc else []),
        "opened": arc.mood_opened if arc else None,
        "closed": arc.mood_closed if arc else None,
        "loops": Jsonb(list(arc.open_loops) if arc else []),
        "resolved": Jsonb(list(arc.resolved_threads) if arc else []),
        "method": arc.method if arc else None,
    }


async def _keep_feedback(
    conn: AsyncConnection[DictRow], session_id: str, feedback: Feedback, turns: int, days: int
) -> None:
    """The person's feedback on the session: its label and turn count, never their words."""
    await conn.execute(
        """
        INSERT INTO finalizer.session_feedback (session_id, label, turn_count, expires_at)
        VALUES (%s, %s, %s, now() + make_interval(days => %s))
        ON CONFLICT (session_id) DO NOTHING
        """,
        (session_id, feedback.value, turns, days),
    )


async def _owe_report(conn: AsyncConnection[DictRow], session_id: str) -> None:
    await conn.execute(
        "INSERT INTO finalizer.webhook_deliveries (session_id) VALUES (%s) "
        "ON CONFLICT (session_id) DO NOTHING",
        (session_id,),
    )


@dataclass(frozen=True)
class DueReport:
    """A report claimed for sending: whose, and which attempt this is."""

    session_id: str
    attempt: int


class ReportOutbox:
    """The reports owed to the webhook: claimed by one replica at a time, sent until done."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def claim_due(self, lease_seconds: float, limit: int = 10) -> list[DueReport]:
        """Claim reports due now that no live lease holds; each claim counts an attempt."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                UPDATE finalizer.webhook_deliveries d
                SET claimed_until = now() + make_interval(secs => %s), attempts = attempts + 1
                WHERE d.session_id IN (
                    SELECT session_id FROM finalizer.webhook_deliveries
                    WHERE status = 'pending' AND next_attempt_at <= now()
                      AND (claimed_until IS NULL OR claimed_until < now())
                    ORDER BY next_attempt_at LIMIT %s
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING d.session_id, d.attempts
                """,
                (lease_seconds, limit),
            )
            rows = await cursor.fetchall()
        return [DueReport(row["session_id"], int(row["attempts"])) for row in rows]

    async def report_source(
        self, session_id: str
    ) -> tuple[FinalizationRecord, Feedback | None] | None:
        """The finalization a report is made of, and its feedback; None once erased."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"""
                SELECT {", ".join(f"f.{name}" for name in _COLUMN_NAMES)},
                       fb.label AS feedback
                FROM finalizer.finalizations f
                LEFT JOIN finalizer.session_feedback fb ON fb.session_id = f.session_id
                WHERE f.session_id = %s
                """,
                (session_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        label = row.pop("feedback")
        record = FinalizationRecord.model_validate(row)
        return record, Feedback(label) if label else None

    async def delivered(self, session_id: str, status_code: int) -> None:
        """The receiver took the report: never send it again."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                UPDATE finalizer.webhook_deliveries
                SET status = 'delivered', delivered_at = now(), last_status_code = %s,
                    last_error = NULL, claimed_until = NULL
                WHERE session_id = %s AND status = 'pending'
                """,
                (status_code, session_id),
            )

    async def retry_later(
        self, session_id: str, delay_seconds: float, status_code: int | None, error: str
    ) -> None:
        """Not taken this time: release the claim and try again after ``delay_seconds``."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                UPDATE finalizer.webhook_deliveries
                SET next_attempt_at = now() + make_interval(secs => %s), claimed_until = NULL,
                    last_status_code = %s, last_error = %s
                WHERE session_id = %s AND status = 'pending'
                """,
                (delay_seconds, status_code, error, session_id),
            )

    async def give_up(self, session_id: str, status_code: int | None, error: str) -> None:
        """Every attempt failed: stop, keeping why."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                UPDATE finalizer.webhook_deliveries
                SET status = 'failed', claimed_until = NULL, last_status_code = %s,
                    last_error = %s
                WHERE session_id = %s AND status = 'pending'
                """,
                (status_code, error, session_id),
            )
