"""SQL for transcripts: threads, turns and their crisis levels. Parameterised statements only.

Turns are unique per (voice session, client turn id) and read in speech order: when the user
started speaking, else when the turn was recorded, then the order they were stored in.

Every write of what a person said takes its owners' locks (shared) in its transaction before it
checks for an erasure, and an erasure takes them exclusive before it reads what to delete: a
write either commits before the erasure reads, or sees the erasure once it committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any, Final, LiteralString

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from opencouch.contracts.events import CrisisLevel, TurnClassified, TurnRecorded
from opencouch.contracts.memory import StoredTurn
from opencouch.memory.policy import owner_key
from opencouch.runtime.postgres import DictPool

_TURN_COLUMNS: Final = """
    id, session_id, client_turn_id, user_text, assistant_text, route, response_style,
    tool_calls, outcome, started_at, recorded_at
"""


def _turn(row: dict[str, Any]) -> StoredTurn:
    return StoredTurn.model_validate({k: v for k, v in row.items() if k != "id"})


def cursor_of(row_id: int) -> str:
    """The opaque cursor of a thread page ending at this turn."""
    return f"t{row_id}"


def row_of(cursor: str) -> int | None:
    """The turn a cursor points at; None when it is no cursor of ours."""
    return int(cursor[1:]) if cursor.startswith("t") and cursor[1:].isdigit() else None


class Recorded(Enum):
    """What became of a turn handed to ``record_turn``."""

    STORED = "stored"
    ALREADY_STORED = "already_stored"
    """A redelivery or retry of a turn stored before."""
    SESSION_ERASED = "session_erased"
    """Its session was erased, or its owner since it was said: a late delivery must not bring
    it back."""


class TranscriptStore:
    """Reads and writes of the stored turns."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def record_turn(self, turn: TurnRecorded) -> Recorded:
        """Store ``turn`` once: stored now, already stored (a redelivery or retry), or not at
        all because its session was erased, or its owner after it was said (a late delivery,
        of a session the erasure could not know of, must not bring it back: that session is
        erased with it)."""
        owners = owners_of(turn.thread_id, turn.user_id)
        async with self._pool.connection() as conn, conn.transaction():
            await lock_owners(conn, owners)
            if await session_erased(conn, turn.session_id):
                return Recorded.SESSION_ERASED
            if await erased_since(conn, owners, turn.recorded_at):
                await erase_late_session(conn, turn.session_id)
                return Recorded.SESSION_ERASED
            await conn.execute(
                """
                INSERT INTO memory.threads (thread_id, user_id) VALUES (%s, %s)
                ON CONFLICT (thread_id) DO UPDATE
                SET updated_at = now(), user_id = COALESCE(EXCLUDED.user_id, threads.user_id)
                """,
                (turn.thread_id, turn.user_id),
            )
            cursor = await conn.execute(
                """
                INSERT INTO memory.turns (
                    thread_id, client_turn_id, session_id, user_id, user_text, assistant_text,
                    route, response_style, tool_calls, outcome, started_at, recorded_at
                ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT turns_once_per_session DO NOTHING
                RETURNING id
                """,
                (
                    turn.thread_id,
                    turn.client_turn_id,
                    turn.session_id,
                    turn.user_id,
                    turn.user_text,
                    turn.assistant_text,
                    turn.route,
                    turn.response_style,
                    Jsonb([call.model_dump(mode="json") for call in turn.tool_calls]),
                    turn.outcome.value,
                    turn.started_at,
                    turn.recorded_at,
                ),
            )
            stored = await cursor.fetchone() is not None
        return Recorded.STORED if stored else Recorded.ALREADY_STORED

    async def record_classification(self, event: TurnClassified) -> bool:
        """Keep a turn's crisis level; a newer classification of the same turn replaces it.
        False when its session was erased: a late classification is dropped, as a late turn is.

        The event names no user: one classified before its thread's erasure is dropped, and one
        stored before its turn arrives goes when that turn is dropped as said before its
        owner's erasure.
        """
        owners = owners_of(event.thread_id, None)
        async with self._pool.connection() as conn, conn.transaction():
            await lock_owners(conn, owners)
            if await session_erased(conn, event.session_id):
                return False
            if await erased_since(conn, owners, event.classified_at):
                await erase_late_session(conn, event.session_id)
                return False
            await conn.execute(
                """
                INSERT INTO memory.turn_classifications (
                    session_id, client_turn_id, thread_id, level, reason, classified_at
                ) VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (session_id, client_turn_id) DO UPDATE
                SET level = EXCLUDED.level, reason = EXCLUDED.reason,
                    classified_at = EXCLUDED.classified_at
                WHERE turn_classifications.classified_at <= EXCLUDED.classified_at
                """,
                (
                    event.session_id,
                    event.client_turn_id,
                    event.thread_id,
                    event.level,
                    event.reason,
                    event.classified_at,
                ),
            )
        return True

    async def turn_stored(self, session_id: str, client_turn_id: str) -> bool:
        """Whether this turn of the session is stored."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM memory.turns WHERE session_id = %s AND client_turn_id = %s",
                (session_id, client_turn_id),
            )
            return await cursor.fetchone() is not None

    async def message_count(self, thread_id: str) -> int:
        """Messages stored in the thread: a user and an assistant message per turn."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS turns FROM memory.turns WHERE thread_id = %s", (thread_id,)
            )
            row = await cursor.fetchone()
        return 2 * int(row["turns"]) if row else 0

    async def session_page(
        self, session_id: str, after: int | None, limit: int
    ) -> tuple[str | None, list[tuple[int, StoredTurn]]]:
        """The thread, and up to ``limit + 1`` stored turns of one voice session in speech
        order (with their row ids), from the start or just after turn ``after``.
        """
        async with self._pool.connection() as conn:
            if after is None:
                cursor = await conn.execute(
                    f"""
                    SELECT thread_id, {_TURN_COLUMNS} FROM memory.turns
                    WHERE session_id = %s ORDER BY spoken_at, id LIMIT %s
                    """,
                    (session_id, limit + 1),
                )
            else:
                cursor = await conn.execute(
                    f"""
                    SELECT thread_id, {_TURN_COLUMNS} FROM memory.turns
                    WHERE session_id = %s AND (spoken_at, id) > (
                        SELECT spoken_at, id FROM memory.turns WHERE id = %s AND session_id = %s
                    )
                    ORDER BY spoken_at, id LIMIT %s
                    """,
                    (session_id, after, session_id, limit + 1),
                )
            rows = await cursor.fetchall()
        thread_id = rows[0]["thread_id"] if rows else None
        return thread_id, [
            (row["id"], _turn({k: v for k, v in row.items() if k != "thread_id"})) for row in rows
        ]

    async def session_counts(self, session_id: str) -> dict[str, Any]:
        """One COUNT over the session's stored turns and their classifications."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT max(t.thread_id) AS thread_id, count(*) AS stored_turns,
                       count(c.level) AS classified_turns, max(c.level) AS peak_crisis_level,
                       min(t.spoken_at) AS first_spoken_at,
                       max(t.recorded_at) AS last_recorded_at
                FROM memory.turns t
                LEFT JOIN memory.turn_classifications c
                  ON c.session_id = t.session_id AND c.client_turn_id = t.client_turn_id
                WHERE t.session_id = %s
                """,
                (session_id,),
            )
            row = await cursor.fetchone()
        assert row is not None  # an aggregate always yields one row
        return dict(row)

    async def session_crisis(self, session_id: str) -> tuple[int, CrisisLevel | None]:
        """How many of the session's turns are classified, and their highest level."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT count(*) AS classified, max(level) AS peak
                FROM memory.turn_classifications WHERE session_id = %s
                """,
                (session_id,),
            )
            row = await cursor.fetchone()
        if row is None or row["peak"] is None:
            return 0, None
        peak: CrisisLevel = int(row["peak"])  # type: ignore[assignment]  # CHECK 0..3
        return int(row["classified"]), peak

    async def thread_page(
        self, thread_id: str, before: int | None, limit: int
    ) -> list[tuple[int, StoredTurn]]:
        """Up to ``limit + 1`` stored turns of the thread (with their row ids), newest first:
        the newest, or those just older than turn ``before``.
        """
        async with self._pool.connection() as conn:
            if before is None:
                cursor = await conn.execute(
                    f"""
                    SELECT {_TURN_COLUMNS} FROM memory.turns WHERE thread_id = %s
                    ORDER BY spoken_at DESC, id DESC LIMIT %s
                    """,
                    (thread_id, limit + 1),
                )
            else:
                cursor = await conn.execute(
                    f"""
                    SELECT {_TURN_COLUMNS} FROM memory.turns
                    WHERE thread_id = %s AND (spoken_at, id) < (
                        SELECT spoken_at, id FROM memory.turns WHERE id = %s AND thread_id = %s
                    )
                    ORDER BY spoken_at DESC, id DESC LIMIT %s
                    """,
                    (thread_id, before, thread_id, limit + 1),
                )
            rows = await cursor.fetchall()
        return [(row["id"], _turn(row)) for row in rows]


def session_hash(session_id: str) -> str:
    """How an erased session is remembered: not even its id is kept."""
    return hashlib.sha256(session_id.encode()).hexdigest()


async def erased_among(conn: AsyncConnection[DictRow], session_ids: Iterable[str]) -> set[str]:
    """Which of these sessions were erased."""
    hashes = {session_hash(session): session for session in session_ids}
    cursor = await conn.execute(
        "SELECT session_hash FROM memory.erased_sessions WHERE session_hash = ANY(%s)",
        (list(hashes),),
    )
    return {hashes[row["session_hash"]] for row in await cursor.fetchall()}


async def session_erased(conn: AsyncConnection[DictRow], session_id: str) -> bool:
    """Whether the session's owner asked to forget everything since it began."""
    cursor = await conn.execute(
        "SELECT 1 FROM memory.erased_sessions WHERE session_hash = %s",
        (session_hash(session_id),),
    )
    return await cursor.fetchone() is not None


def owners_of(thread_id: str, user_id: str | None) -> list[str]:
    """Whose erasure takes what is said in this thread by this user: the user's (when known)
    and the thread's."""
    owners = [owner_key(thread_id, None)]
    if user_id:
        owners.append(owner_key(thread_id, user_id))
    return owners


def _lock_order(owner: str) -> tuple[bool, str]:
    return not owner.startswith("user:"), owner


async def lock_owners(
    conn: AsyncConnection[DictRow], owners: Iterable[str], *, exclusive: bool = False
) -> None:
    """Hold the advisory lock of each owner until the transaction ends: shared by the writes
    of what was said, exclusive for an erasure. Users before threads, each in order, for
    everybody: no two transactions ever wait for each other (a deadlock)."""
    statement: LiteralString = (
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
        if exclusive
        else "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))"
    )
    for owner in sorted(set(owners), key=_lock_order):
        await conn.execute(statement, (owner,))


def owner_hash(owner: str) -> str:
    """How an erased owner is remembered: not even its id is kept."""
    return hashlib.sha256(owner.encode()).hexdigest()


async def remember_erased_owner(conn: AsyncConnection[DictRow], owner: str) -> None:
    """Remember that the owner's erasure forgot everything said until now."""
    await conn.execute(
        """
        INSERT INTO memory.erased_owners (owner_hash) VALUES (%s)
        ON CONFLICT (owner_hash) DO UPDATE
        SET erased_at = GREATEST(erased_owners.erased_at, EXCLUDED.erased_at)
        """,
        (owner_hash(owner),),
    )


async def erased_since(
    conn: AsyncConnection[DictRow], owners: Iterable[str], said_at: datetime
) -> bool:
    """Whether one of these owners was erased at or after ``said_at``."""
    cursor = await conn.execute(
        "SELECT 1 FROM memory.erased_owners WHERE owner_hash = ANY(%s) AND erased_at >= %s",
        ([owner_hash(owner) for owner in owners], said_at),
    )
    return await cursor.fetchone() is not None


async def any_erased(conn: AsyncConnection[DictRow], owners: Iterable[str]) -> bool:
    """Whether one of these owners was ever erased (as long as erasures are remembered)."""
    cursor = await conn.execute(
        "SELECT 1 FROM memory.erased_owners WHERE owner_hash = ANY(%s)",
        ([owner_hash(owner) for owner in owners],),
    )
    return await cursor.fetchone() is not None


async def remember_erased_sessions(
    conn: AsyncConnection[DictRow], session_ids: Iterable[str]
) -> None:
    """Remember these sessions as erased (hashes of their ids)."""
    await conn.execute(
        "INSERT INTO memory.erased_sessions (session_hash) SELECT unnest(%s::text[]) "
        "ON CONFLICT (session_hash) DO NOTHING",
        ([session_hash(session) for session in session_ids],),
    )


async def erase_late_session(conn: AsyncConnection[DictRow], session_id: str) -> None:
    """A session its owner's erasure did not know of (nothing of it was stored yet), though it
    was said before: erase it now, as the erasure would have, so nothing of it comes later."""
    await remember_erased_sessions(conn, [session_id])
    await conn.execute("DELETE FROM memory.turns WHERE session_id = %s", (session_id,))
    await conn.execute(
        "DELETE FROM memory.turn_classifications WHERE session_id = %s", (session_id,)
    )
