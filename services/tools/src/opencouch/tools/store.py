"""SQL for the tools schema: the crisis log, the grounded corpus, persistent exercise runs.

Every statement is parameterised. A connection is waited for at most ``timeout`` seconds, so a
database outage becomes a prompt error the caller can turn into a tool output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.types.json import Jsonb

from opencouch.runtime.postgres import DictPool
from opencouch.tools.exercises import ExerciseRun


def opaque_id(*parts: str) -> str:
    """A sha256 hex digest of ``parts``: links rows of one session without naming it."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class PassageHit:
    """A corpus passage the search found, and how well it matched."""

    passage_id: str
    title: str
    publisher: str
    url: str
    summary: str
    rank: float
    coverage: float
    """The share of the query's search terms that the passage contains."""


class ToolsStore:
    """Reads and writes of the tools service's tables."""

    def __init__(self, pool: DictPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    # -- crisis log ---------------------------------------------------------------------------

    async def log_crisis(
        self,
        session_id: str,
        client_turn_id: str,
        level: int,
        reason: str,
        at: datetime | None = None,
    ) -> bool:
        """Log one turn at level 2 or 3 once; False if it was already logged."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                """
                INSERT INTO tools.crisis_log (session_hash, turn_hash, level, reason, logged_at)
                VALUES (%s, %s, %s, %s, COALESCE(%s, now()))
                ON CONFLICT ON CONSTRAINT crisis_log_once_per_turn DO NOTHING
                RETURNING id
                """,
                (
                    opaque_id(session_id),
                    opaque_id(session_id, client_turn_id),
                    level,
                    reason,
                    at,
                ),
            )
            return await cursor.fetchone() is not None

    async def purge_crisis_log(self, older_than: timedelta) -> int:
        """Delete crisis-log rows older than ``older_than``; returns how many."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                "DELETE FROM tools.crisis_log WHERE logged_at < now() - %s", (older_than,)
            )
            return cursor.rowcount

    # -- grounded corpus ----------------------------------------------------------------------

    async def search_passages(self, query: str, limit: int = 3) -> list[PassageHit]:
        """Passages matching any of the query's terms, best first, with their coverage."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                """
                WITH terms AS (
                    SELECT array_agg(lexeme) AS lexemes
                    FROM unnest(to_tsvector('english', %(query)s))
                ), question AS (
                    SELECT lexemes,
                           (SELECT string_agg(quote_literal(lexeme), ' | ')
                            FROM unnest(lexemes) AS lexeme)::tsquery AS tsq
                    FROM terms
                    WHERE lexemes IS NOT NULL
                )
                SELECT p.passage_id, p.title, p.publisher, p.url, p.summary,
                       ts_rank_cd(p.search, question.tsq, 1) AS rank,
                       (SELECT count(*) FROM unnest(question.lexemes) AS lexeme
                        WHERE lexeme = ANY (tsvector_to_array(p.search)))::float
                           / cardinality(question.lexemes) AS coverage
                FROM tools.passages AS p, question
                WHERE p.search @@ question.tsq
                ORDER BY coverage DESC, rank DESC, p.passage_id
                LIMIT %(limit)s
                """,
                {"query": query, "limit": limit},
            )
            rows = await cursor.fetchall()
        return [
            PassageHit(
                passage_id=row["passage_id"],
                title=row["title"],
                publisher=row["publisher"],
                url=row["url"],
                summary=row["summary"],
                rank=float(row["rank"]),
                coverage=float(row["coverage"]),
            )
            for row in rows
        ]

    async def corpus_urls(self) -> set[str]:
        """Every source URL in the corpus."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute("SELECT url FROM tools.passages")
            return {row["url"] for row in await cursor.fetchall()}

    # -- exercise runs of persistent sessions -------------------------------------------------

    async def save_exercise_run(self, session_id: str, run: ExerciseRun) -> None:
        """Keep ``run`` as the session's exercise, replacing any earlier one."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            await conn.execute(
                """
                INSERT INTO tools.exercise_runs (session_id, exercise_id, step_index, state)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (session_id) DO UPDATE
                SET exercise_id = EXCLUDED.exercise_id, step_index = EXCLUDED.step_index,
                    state = EXCLUDED.state, updated_at = now()
                """,
                (session_id, run.exercise_id, run.step_index, Jsonb(run.model_dump(mode="json"))),
            )

    async def exercise_run(self, session_id: str) -> ExerciseRun | None:
        """The session's kept exercise run, if any."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                "SELECT state FROM tools.exercise_runs WHERE session_id = %s", (session_id,)
            )
            row = await cursor.fetchone()
        return ExerciseRun.model_validate(row["state"]) if row else None

    async def forget_exercise_runs(self, session_ids: list[str]) -> int:
        """Delete the exercise runs of these sessions (an owner asked to forget everything)."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                "DELETE FROM tools.exercise_runs WHERE session_id = ANY(%s)", (session_ids,)
            )
            return cursor.rowcount

    async def purge_exercise_runs(self, older_than: timedelta) -> int:
        """Delete exercise runs not touched for ``older_than``; returns how many."""
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                "DELETE FROM tools.exercise_runs WHERE updated_at < now() - %s", (older_than,)
            )
            return cursor.rowcount
