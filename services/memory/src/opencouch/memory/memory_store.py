"""SQL for durable memory: facts, session summaries, rules and the recall flag.

Every row belongs to an owner (``user:<id>`` or ``thread:<id>``) and records its source: the
voice session and thread it came from, and when. Items are numbered per kind, newest first,
the way ``show_saved_memory`` shows them. Search is Postgres full-text search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from opencouch.contracts.memory import MemoryItem, MemoryKind, MemorySource, SessionSummary
from opencouch.memory.candidates import HeldFact
from opencouch.memory.intent import normalise
from opencouch.memory.store import (
    any_erased,
    erase_late_session,
    erased_since,
    lock_owners,
    owners_of,
    session_erased,
)
from opencouch.runtime.postgres import DictPool


@dataclass(frozen=True)
class _Layer:
    table: str
    text: str
    at: str


_LAYERS: Final[dict[MemoryKind, _Layer]] = {
    "fact": _Layer("facts", "fact_text", "stated_at"),
    "session": _Layer("session_summaries", "summary_text", "ended_at"),
    "rule": _Layer("response_rules", "rule_text", "created_at"),
}

# The query's words, stemmed and without stop words, all of them and any of them: recall should
# find "my sister is called Ana" for "what is my sister's name". Built by Postgres from
# plainto_tsquery, so the user's words are never parsed as query syntax.
_ANY_WORD: Final = "replace(plainto_tsquery('english', %(query)s)::text, ' & ', ' | ')::tsquery"
_ALL_WORDS: Final = "plainto_tsquery('english', %(query)s)"
RANKED_MATCHES: Final = 100


@dataclass(frozen=True)
class FoundItem:
    """A stored item, the row it lives in, and whether it has every word searched for."""

    row_id: int
    item: MemoryItem
    complete: bool = False


@dataclass(frozen=True)
class CommitResult:
    """What committing a session's candidates did."""

    already_committed: bool
    facts_committed: int
    summary_stored: bool


def _item(row: dict[str, Any]) -> MemoryItem:
    return MemoryItem(
        kind=row["kind"],
        index=row["index"],
        text=row["text"],
        source=MemorySource(session_id=row["source_session_id"], recorded_at=row["at"]),
    )


def _select_layer(kind: MemoryKind, *extra: sql.Composable) -> sql.Composed:
    """One layer's rows as (kind, id, text, source_session_id, at, *extra) for an owner."""
    layer = _LAYERS[kind]
    columns = [
        sql.SQL("{} AS kind").format(sql.Literal(kind)),
        sql.SQL("id"),
        sql.SQL("{} AS text").format(sql.Identifier(layer.text)),
        sql.SQL("source_session_id"),
        sql.SQL("{} AS at").format(sql.Identifier(layer.at)),
        *extra,
    ]
    return sql.SQL("SELECT {} FROM memory.{} WHERE owner_key = %(owner)s").format(
        sql.SQL(", ").join(columns), sql.Identifier(layer.table)
    )


def _newest_matches(kind: MemoryKind, which: str) -> sql.Composed:
    """The layer's newest ``RANKED_MATCHES`` rows matching ``q.<which>``, with their vectors."""
    return sql.SQL("({} AND search @@ q.{} ORDER BY {} DESC, id DESC LIMIT {})").format(
        _select_layer(kind, sql.SQL("search")),
        sql.Identifier(which),
        sql.Identifier(_LAYERS[kind].at),
        sql.Literal(RANKED_MATCHES),
    )


def _index_of_hit() -> sql.Composed:
    """The 1-based, newest-first position of ``hits``' row within its kind."""
    branches = [
        sql.SQL(
            "WHEN {kind} THEN (SELECT count(*) FROM memory.{table} newer "
            "WHERE newer.owner_key = %(owner)s AND (newer.{at}, newer.id) > (hits.at, hits.id))"
        ).format(
            kind=sql.Literal(kind),
            table=sql.Identifier(layer.table),
            at=sql.Identifier(layer.at),
        )
        for kind, layer in _LAYERS.items()
    ]
    return sql.SQL("1 + CASE hits.kind {} END").format(sql.SQL(" ").join(branches))


class MemoryStore:
    """Reads and writes of the durable memory layers."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    # -- rules -------------------------------------------------------------------------------

    async def proactive_recall_enabled(self, owner: str) -> bool:
        """Whether the owner allowed saved memory to be brought up unprompted."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT proactive_recall_enabled FROM memory.owner_settings WHERE owner_key = %s",
                (owner,),
            )
            row = await cursor.fetchone()
        return bool(row and row["proactive_recall_enabled"])

    async def set_proactive_recall(
        self, owner: str, enabled: bool, *, session_id: str, thread_id: str
    ) -> bool:
        """Set the owner's recall flag (off by default); False when it already had that value,
        or its session was erased meanwhile (see ``_fenced``)."""
        async with self._pool.connection() as conn, conn.transaction():
            if not await _fenced(conn, owner, session_id, thread_id):
                return False
            cursor = await conn.execute(
                "SELECT proactive_recall_enabled FROM memory.owner_settings "
                "WHERE owner_key = %s FOR UPDATE",
                (owner,),
            )
            row = await cursor.fetchone()
            if bool(row and row["proactive_recall_enabled"]) == enabled:
                return False
            await conn.execute(
                """
                INSERT INTO memory.owner_settings (
                    owner_key, proactive_recall_enabled, source_session_id, source_thread_id
                ) VALUES (%s, %s, %s, %s)
                ON CONFLICT (owner_key) DO UPDATE
                SET proactive_recall_enabled = EXCLUDED.proactive_recall_enabled,
                    source_session_id = EXCLUDED.source_session_id,
                    source_thread_id = EXCLUDED.source_thread_id,
                    updated_at = now()
                """,
                (owner, enabled, session_id, thread_id),
            )
        return True

    async def save_rule(self, owner: str, text: str, *, session_id: str, thread_id: str) -> bool:
        """Keep a response preference; False when the owner already had it, or its session was
        erased meanwhile (see ``_fenced``)."""
        async with self._pool.connection() as conn, conn.transaction():
            if not await _fenced(conn, owner, session_id, thread_id):
                return False
            cursor = await conn.execute(
                """
                INSERT INTO memory.response_rules (
                    owner_key, rule_text, rule_key, source_session_id, source_thread_id
                ) VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT response_rules_once_per_owner DO NOTHING
                RETURNING id
                """,
                (owner, text, normalise(text), session_id, thread_id),
            )
            return await cursor.fetchone() is not None

    async def rules(self, owner: str, limit: int = 20) -> list[str]:
        """The owner's standing response preferences, newest first."""
        return [item.text for item in await self.newest(owner, "rule", limit)]

    # -- listing and finding -------------------------------------------------------------------

    async def counts(self, owner: str) -> dict[MemoryKind, int]:
        """How many items of each kind the owner has."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT (SELECT count(*) FROM memory.facts WHERE owner_key = %(owner)s) AS fact,
                       (SELECT count(*) FROM memory.session_summaries
                        WHERE owner_key = %(owner)s) AS session,
                       (SELECT count(*) FROM memory.response_rules
                        WHERE owner_key = %(owner)s) AS rule
                """,
                {"owner": owner},
            )
            row = await cursor.fetchone()
        assert row is not None  # a SELECT without FROM always yields one row
        return {"fact": int(row["fact"]), "session": int(row["session"]), "rule": int(row["rule"])}

    async def newest(self, owner: str, kind: MemoryKind, limit: int) -> list[MemoryItem]:
        """The owner's newest ``limit`` items of ``kind``, numbered from 1."""
        query = sql.SQL(
            "SELECT *, row_number() OVER (ORDER BY at DESC, id DESC) AS index FROM ({}) layer "
            "ORDER BY at DESC, id DESC LIMIT %(limit)s"
        ).format(_select_layer(kind))
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, {"owner": owner, "limit": limit})
            rows = await cursor.fetchall()
        return [_item(row) for row in rows]

    async def item_at(self, owner: str, kind: MemoryKind, index: int) -> FoundItem | None:
        """The item ``show_saved_memory`` numbers ``index`` in its ``kind`` list."""
        query = sql.SQL(
            "SELECT *, %(index)s AS index FROM ({}) layer "
            "ORDER BY at DESC, id DESC OFFSET %(offset)s LIMIT 1"
        ).format(_select_layer(kind))
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                query, {"owner": owner, "index": index, "offset": index - 1}
            )
            row = await cursor.fetchone()
        return FoundItem(row["id"], _item(row)) if row else None

    async def search(
        self, owner: str, query: str, kinds: Sequence[MemoryKind], limit: int
    ) -> list[FoundItem]:
        """The owner's items of ``kinds`` sharing a meaningful word with ``query``, best first.

        Items with every word of the query come before those with only some. Only the newest
        ``RANKED_MATCHES`` of each (per kind) are ranked, so a common word costs the same
        however much is saved.
        """
        statement = sql.SQL(
            "WITH q AS (SELECT {every} AS all_words, {some} AS any_words), "
            "found AS (SELECT DISTINCT ON (kind, id) * FROM ({matches}) matches), "
            "hits AS (SELECT kind, id, text, source_session_id, at, "
            "search @@ all_words AS complete, "
            "ts_rank_cd(search, any_words) + (search @@ all_words)::int AS rank FROM found "
            "ORDER BY rank DESC, at DESC, id DESC LIMIT %(limit)s) "
            "SELECT hits.*, {index} AS index FROM hits ORDER BY rank DESC, at DESC, id DESC"
        ).format(
            every=sql.SQL(_ALL_WORDS),
            some=sql.SQL(_ANY_WORD),
            matches=sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT * FROM q CROSS JOIN LATERAL {} m").format(
                    _newest_matches(kind, which)
                )
                for kind in kinds
                for which in ("all_words", "any_words")
            ),
            index=_index_of_hit(),
        )
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, {"owner": owner, "query": query, "limit": limit})
            rows = await cursor.fetchall()
        return [FoundItem(row["id"], _item(row), row["complete"]) for row in rows]

    async def matches(self, query: str, texts: Sequence[str]) -> list[tuple[bool, bool]]:
        """For each text not stored yet: (shares a word with ``query``, has all its words),
        by the same rules as ``search``."""
        if not texts:
            return []
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"""
                WITH q AS (SELECT {_ALL_WORDS} AS all_words, {_ANY_WORD} AS any_words)
                SELECT to_tsvector('english', text) @@ any_words AS shares_a_word,
                       to_tsvector('english', text) @@ all_words AS has_every_word
                FROM q CROSS JOIN unnest(%(texts)s::text[]) WITH ORDINALITY AS t(text, n)
                ORDER BY n
                """,
                {"query": query, "texts": list(texts)},
            )
            rows = await cursor.fetchall()
        return [(bool(row["shares_a_word"]), bool(row["has_every_word"])) for row in rows]

    async def delete(self, owner: str, kind: MemoryKind, row_id: int) -> str | None:
        """Delete one item of the owner and return its text; None when it was already gone."""
        layer = _LAYERS[kind]
        statement = sql.SQL(
            "DELETE FROM memory.{} WHERE id = %s AND owner_key = %s RETURNING {} AS text"
        ).format(sql.Identifier(layer.table), sql.Identifier(layer.text))
        async with self._pool.connection() as conn:
            cursor = await conn.execute(statement, (row_id, owner))
            row = await cursor.fetchone()
        return str(row["text"]) if row else None

    # -- committing a session's candidates -----------------------------------------------------

    async def commit(
        self,
        *,
        session_id: str,
        thread_id: str,
        owner: str,
        facts: Sequence[HeldFact],
        summary: SessionSummary | None,
    ) -> CommitResult:
        """Keep the session's facts and summary once; a second commit changes nothing, and a
        session erased before its commit arrived commits nothing. Nor does one that ended (its
        summary, its last fact) before its owner's erasure, which is then erased with it, or
        one with nothing to keep of an owner erased since."""
        owners = {owner, *owners_of(thread_id, None)}
        said_at = [fact.stated_at for fact in facts]
        if summary is not None:
            said_at.append(summary.ended_at)
        async with self._pool.connection() as conn, conn.transaction():
            await lock_owners(conn, owners)
            if await session_erased(conn, session_id):
                return CommitResult(True, 0, False)
            if said_at and await erased_since(conn, owners, max(said_at)):
                await erase_late_session(conn, session_id)
                return CommitResult(True, 0, False)
            if not said_at and await any_erased(conn, owners):
                return CommitResult(True, 0, False)
            cursor = await conn.execute(
                """
                INSERT INTO memory.committed_sessions (
                    session_id, owner_key, thread_id, facts_committed, summary_stored
                ) VALUES (%s, %s, %s, 0, false)
                ON CONFLICT (session_id) DO NOTHING RETURNING session_id
                """,
                (session_id, owner, thread_id),
            )
            if await cursor.fetchone() is None:
                cursor = await conn.execute(
                    "SELECT facts_committed, summary_stored FROM memory.committed_sessions "
                    "WHERE session_id = %s",
                    (session_id,),
                )
                row = await cursor.fetchone()
                assert row is not None  # the conflict was on this very row
                return CommitResult(True, row["facts_committed"], row["summary_stored"])
            committed = 0
            for fact in facts:
                cursor = await conn.execute(
                    """
                    INSERT INTO memory.facts (
                        owner_key, fact_text, fact_key, source_session_id, source_thread_id,
                        stated_at
                    ) VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT ON CONSTRAINT facts_once_per_owner DO NOTHING RETURNING id
                    """,
                    (owner, fact.text, fact.key, session_id, fact.thread_id, fact.stated_at),
                )
                committed += await cursor.fetchone() is not None
            stored = False
            if summary is not None:
                cursor = await conn.execute(
                    """
                    INSERT INTO memory.session_summaries (
                        owner_key, summary_text, themes, source_session_id, source_thread_id,
                        ended_at
                    ) VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (source_session_id) DO NOTHING RETURNING id
                    """,
                    (
                        owner,
                        summary.summary,
                        Jsonb(list(summary.themes)),
                        session_id,
                        thread_id,
                        summary.ended_at,
                    ),
                )
                stored = await cursor.fetchone() is not None
            await conn.execute(
                "UPDATE memory.committed_sessions SET facts_committed = %s, summary_stored = %s "
                "WHERE session_id = %s",
                (committed, stored, session_id),
            )
        return CommitResult(False, committed, stored)


async def _fenced(
    conn: AsyncConnection[DictRow], owner: str, session_id: str, thread_id: str
) -> bool:
    """Take the owner's locks, as every write of what was said does (``store``), and say whether
    the write may go on: not once its session was erased. A tool call's session is live, so an
    erasure of its owner names it (the gateway closes and names every live session): a write
    that commits first is erased with the rest, one that comes after finds its session erased."""
    await lock_owners(conn, {owner, *owners_of(thread_id, None)})
    return not await session_erased(conn, session_id)
