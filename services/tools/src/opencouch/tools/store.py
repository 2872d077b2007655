"""SQL for the tools schema: the crisis log, the grounded corpus, persistent exercise runs.

Every statement is parameterised. A connection is waited for at most ``timeout`` seconds, so a
database outage becomes a prompt error the caller can turn into a tool output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from psycopg.types.json import Jsonb

from opencouch.runtime.postgres import DictPool
from opencouch.tools.exercises import ExerciseRun


def opaque_id(*parts: str) -> str:
    """A sha256 hex digest of ``parts``: links rows of one session without naming it."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


# Everyday English that says nothing of a question's topic, beyond the english stop list. Only a
# word the library never uses is looked up here (``ToolsStore.search_passages``): one the
# library uses weighs what the library makes of it. Without this, "how much sleep do adults
# need" ("much") or "is drinking coffee bad for sleep" ("bad") would look like questions on a
# topic the library lacks. Postgres stems the list as it stems the question.
EVERYDAY_WORDS: Final = (
    # what the english stop list leaves of contractions and modal verbs
    "m ve ll re d didn doesn isn wasn aren won wouldn couldn shouldn haven hasn "
    "would could might must may shall ought "
    # degree, frequency, likelihood
    "also even ever else yet still already though although however whether instead anyway "
    "otherwise actually really quite rather pretty fairly almost nearly maybe perhaps "
    "probably possibly likely unlikely definitely certainly surely usually normally "
    "generally typically often always never sometimes rarely mostly mainly especially "
    "particularly exactly simply basically literally totally completely fully entirely "
    "extremely much many lot lots little bit less least enough plenty several various "
    "every another either neither whole "
    # judgement and size
    "good bad better worse best worst great nice fine okay ok alright right wrong true "
    "real sure normal usual common typical weird strange odd big small huge tiny large "
    "new old long short important possible impossible easy hard difficult different "
    "similar certain main full able unable safe unsafe healthy unhealthy harmful "
    # time
    "today tonight tomorrow yesterday day daily night morning evening afternoon week "
    "weekend month year time moment minute hour second lately recently currently soon "
    "later early late ago since anymore nowadays forever first last next previous "
    # things and people in general
    "thing something anything everything nothing someone somebody anyone anybody everyone "
    "everybody nobody people person man woman guy way stuff part kind sort type matter "
    "question answer reason fact example idea point case issue situation number amount "
    "level piece place area side "
    # verbs of any topic
    "get go make know think want say tell ask try use let put seem look come give mean "
    "happen start begin stop end show turn become leave call like wonder guess suppose "
    "believe work need take keep bring hold recommend suggest advise "
    # manner
    "quick quickly fast easily naturally properly immediately instantly straight "
    # conversation
    "please thanks thank hey hi hello yeah yes um uh well oh"
)


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
    """The share of the query's topic weight that the passage holds (see ``search_passages``)."""
    jurisdiction: str | None = None
    """Where it holds (a service of that country, ``US``, or of that part of one, ``GB-ENG``),
    or None: anywhere."""


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
        """Passages matching any of the query's terms, best first, with their coverage.

        Coverage is the share of the query's weight in the passage. A term the library uses
        weighs what it says about a topic here: its rarity across the passages (BM25's inverse
        document frequency) times the share of the passages using it that name it in their
        title or keywords (weight A), not only in passing in their summary. So "grief" weighs a
        lot and "long" or "last" little, though each is in three or four passages; "feel",
        in a dozen summaries and no keywords, weighs nothing. A term the library never uses
        weighs nothing if it is everyday English (``EVERYDAY_WORDS``: "much", "bad",
        "tonight"), and otherwise the most: it is likely what the question is about
        ("bipolar", "antidepressants"), and no passage covers it.
        """
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(
                """
                WITH question AS (
                    SELECT array_agg(lexeme) AS lexemes,
                           string_agg(quote_literal(lexeme), ' | ')::tsquery AS tsq
                    FROM unnest(to_tsvector('english', %(query)s))
                ), usage AS (
                    SELECT lexeme,
                           count(*)::float AS passages,
                           count(*) FILTER (
                               WHERE lexeme = ANY (tsvector_to_array(p.search))
                           )::float AS uses,
                           count(*) FILTER (
                               WHERE lexeme = ANY (tsvector_to_array(ts_filter(p.search, '{a}')))
                           )::float AS topic_uses
                    FROM question, unnest(question.lexemes) AS lexeme, tools.passages AS p
                    GROUP BY lexeme
                ), term AS (
                    SELECT lexeme,
                           CASE WHEN uses > 0
                                THEN ln(1 + (passages - uses + 0.5) / (uses + 0.5))
                                     * topic_uses / uses
                                WHEN lexeme = ANY (
                                    tsvector_to_array(to_tsvector('english', %(everyday)s))
                                ) THEN 0
                                ELSE ln(1 + (passages + 0.5) / 0.5)
                           END AS weight
                    FROM usage
                )
                SELECT p.passage_id, p.title, p.publisher, p.url, p.summary, p.jurisdiction,
                       ts_rank_cd(p.search, question.tsq, 1) AS rank,
                       COALESCE(
                           (SELECT sum(weight) FROM term
                            WHERE lexeme = ANY (tsvector_to_array(p.search)))
                           / NULLIF((SELECT sum(weight) FROM term), 0),
                           0
                       ) AS coverage
                FROM tools.passages AS p, question
                WHERE p.search @@ question.tsq
                ORDER BY coverage DESC, rank DESC, p.passage_id
                LIMIT %(limit)s
                """,
                {"query": query, "everyday": EVERYDAY_WORDS, "limit": limit},
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
                jurisdiction=row["jurisdiction"],
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
        """Keep ``run`` as the session's exercise, replacing an earlier revision of it.

        Two calls of one session change its run in turn (in Redis) but may write it here in
        either order: a revision older than the one kept is not written over it.
        """
        async with self._pool.connection(timeout=self._timeout) as conn:
            await conn.execute(
                """
                INSERT INTO tools.exercise_runs (session_id, exercise_id, step_index, state)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (session_id) DO UPDATE
                SET exercise_id = EXCLUDED.exercise_id, step_index = EXCLUDED.step_index,
                    state = EXCLUDED.state, updated_at = now()
                WHERE COALESCE((tools.exercise_runs.state ->> 'revision')::int, 0)
                    < COALESCE((EXCLUDED.state ->> 'revision')::int, 0)
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
