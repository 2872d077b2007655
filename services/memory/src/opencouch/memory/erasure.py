"""Forget everything: erase a user's (or a thread's) durable memory and transcripts.

Postgres first, in one transaction across every memory table; then the copies elsewhere: turn
messages still in JetStream (and kept as dead letters), and candidates held in Redis; last the
``OwnerErased`` event, which tells every other service which sessions to forget. The same
transaction records the erasure as unfinished (``memory.erasures``), and the record goes only
once all of that is done: an erasure interrupted after its commit (Redis or NATS down, a crash)
is finished by the caller's retry, which finds the sessions the first try erased, or by the
sweep, if nobody retries.

For a user: everything they own, their sessions' turns and crisis levels, and anything sourced
from those sessions. For a thread: everything the thread owns, its turns, and anything sourced
from it (also facts and summaries its sessions gave a user).

What is on its way meanwhile does not outlive it. The transaction first takes the owner's lock
(and, for a user, their threads' locks) exclusive, which every write of what was said takes
shared: a write either commits before the erasure reads what to delete, or waits for it and
then finds it. The owner is remembered as erased, and when (``memory.erased_owners``, as a
hash): a turn, a crisis level or a commit said before that moment and arriving after it (memory
was behind, a session the erasure could not know of) is dropped, and its session erased with
it; what is said after it, in a new session, is kept.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, LiteralString

from nats.js import JetStreamContext
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from opencouch.contracts import subjects
from opencouch.contracts.events import OwnerErased, TurnRecorded
from opencouch.contracts.memory import EraseMemoryReply
from opencouch.memory.candidates import CandidateStore
from opencouch.memory.policy import owner_key
from opencouch.memory.store import (
    erased_among,
    lock_owners,
    remember_erased_owner,
    remember_erased_sessions,
)
from opencouch.runtime.jetstream import (
    dead_letters,
    forget_dead_letter,
    forget_events,
    publish_event,
    purge_acknowledged,
    stored_events,
)
from opencouch.runtime.postgres import DictPool

log = logging.getLogger(__name__)

MEMORY_TABLES: Final = (
    "turns",
    "turn_classifications",
    "facts",
    "session_summaries",
    "response_rules",
    "owner_settings",
    "committed_sessions",
    "threads",
)
"""Every table of the memory schema that holds a user's data; erasure reports each."""


@dataclass(frozen=True)
class _Subject:
    """Whose data goes: a user (with the threads they used) or one thread."""

    user_id: str | None
    thread_id: str | None

    @property
    def owner(self) -> str:
        if self.user_id is not None:
            return owner_key("", self.user_id)
        assert self.thread_id is not None  # the request names exactly one
        return owner_key(self.thread_id, None)


@dataclass(frozen=True)
class _Unfinished:
    """An erasure committed in Postgres whose copies and announcement may still be to do."""

    erasure_id: str
    subject: _Subject
    session_ids: list[str]
    thread_ids: list[str]
    requested_at: datetime

    @classmethod
    def from_row(cls, row: DictRow) -> _Unfinished:
        return cls(
            erasure_id=row["erasure_id"],
            subject=_Subject(row["user_id"], row["thread_id"]),
            session_ids=list(row["session_ids"]),
            thread_ids=list(row["thread_ids"]),
            requested_at=row["requested_at"],
        )


class Eraser:
    """Erases across Postgres, JetStream and Redis, then announces it to the other services."""

    def __init__(self, pool: DictPool, js: JetStreamContext, candidates: CandidateStore) -> None:
        self._pool = pool
        self._js = js
        self._candidates = candidates

    async def erase(
        self,
        *,
        user_id: str | None,
        thread_id: str | None,
        session_ids: Sequence[str] = (),
        thread_ids: Sequence[str] = (),
    ) -> EraseMemoryReply:
        """Erase everything of ``user_id`` (or of ``thread_id``), and the sessions the caller
        names; returns what went. An earlier try that did not finish is finished with it."""
        subject = _Subject(user_id, thread_id)
        async with self._pool.connection() as conn, conn.transaction():
            # Locked before anything is read: no write of theirs is half done from here on.
            await lock_owners(conn, [subject.owner], exclusive=True)
            await remember_erased_owner(conn, subject.owner)
            if subject.user_id is not None:
                # Crisis levels, and turns said while a thread was anonymous, name no user.
                await lock_owners(
                    conn,
                    [owner_key(thread, None) for thread in await _threads_of(conn, subject)]
                    + [owner_key(thread, None) for thread in thread_ids],
                    exclusive=True,
                )
            found, threads = await _sessions_and_threads(conn, subject)
            sessions = sorted({*found, *session_ids})
            counts = await _delete_rows(conn, subject, sessions)
            await _remember_erased(conn, sessions)
            erasure = await _record_unfinished(
                conn, subject, sessions, sorted({*threads, *thread_ids})
            )
        pending, messages = await self._finish(erasure)
        log.info(
            "memory erased",
            extra={
                "sessions": len(erasure.session_ids),
                "rows": sum(counts.values()),
                "messages": messages,
            },
        )
        return EraseMemoryReply(
            erasure_id=erasure.erasure_id,
            erased_rows=counts,
            sessions=len(erasure.session_ids),
            session_ids=erasure.session_ids,
            thread_ids=erasure.thread_ids,
            stream_messages=messages,
            pending_candidates=pending,
        )

    async def finish_unfinished(self, *, older_than_seconds: float) -> int:
        """Finish every erasure left unfinished for ``older_than_seconds`` (nobody retried it);
        how many. Finishing one twice (a retry at the same moment) is harmless."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT erasure_id, user_id, thread_id, session_ids, thread_ids, requested_at "
                "FROM memory.erasures "
                "WHERE requested_at < now() - make_interval(secs => %s) ORDER BY requested_at",
                (older_than_seconds,),
            )
            unfinished = [_Unfinished.from_row(row) for row in await cursor.fetchall()]
        for erasure in unfinished:
            await self._finish(erasure)
            log.warning("unfinished erasure finished", extra={"sessions": len(erasure.session_ids)})
        return len(unfinished)

    async def forget_late_dead_letters(self) -> int:
        """Delete the dead letters of erased sessions' turns written after their erasure (a
        reader still retrying one gave up later, the crisis classifier's say); how many."""
        letters: list[tuple[int, str]] = []
        async for letter in dead_letters(self._js, ">"):
            if letter.original_subject != subjects.TURN_RECORDED:
                continue
            try:
                letters.append(
                    (letter.sequence, TurnRecorded.model_validate_json(letter.data).session_id)
                )
            except ValueError:
                continue
        if not letters:
            return 0
        async with self._pool.connection() as conn:
            erased = await erased_among(conn, {session for _, session in letters})
        forgotten = 0
        for sequence, session in letters:
            if session in erased:
                forgotten += await forget_dead_letter(self._js, sequence)
        if forgotten:
            log.warning(
                "late dead letters of erased sessions deleted", extra={"messages": forgotten}
            )
        return forgotten

    async def _finish(self, erasure: _Unfinished) -> tuple[int, int]:
        """Clear the copies outside Postgres, announce the erasure, then forget the record;
        held candidates dropped and stream messages erased."""
        # Held candidates are listed under their owner and their thread, and under the session:
        # one erased while its thread was anonymous is listed under the owner of then.
        pending = await self._candidates.drop_everything_of(
            [erasure.subject.owner], erasure.session_ids
        )
        messages = await self._erase_stream_copies(
            erasure.subject, set(erasure.session_ids), set(erasure.thread_ids)
        )
        event = OwnerErased(
            erasure_id=erasure.erasure_id,
            session_ids=erasure.session_ids,
            thread_ids=erasure.thread_ids,
            erased_at=erasure.requested_at,
        )
        await publish_event(self._js, subjects.OWNER_ERASED, event, dedup_id=event.dedup_id)
        async with self._pool.connection() as conn:
            # A retry that merged into the record since gave it a new id: that one stays.
            await conn.execute(
                "DELETE FROM memory.erasures WHERE erasure_id = %s", (erasure.erasure_id,)
            )
        return pending, messages

    async def _erase_stream_copies(
        self, subject: _Subject, sessions: set[str], threads: set[str]
    ) -> int:
        """Delete turn messages of the subject from the events stream and the dead letters."""

        def theirs(data: bytes) -> bool:
            try:
                turn = TurnRecorded.model_validate_json(data)
            except ValueError:
                return False
            if subject.user_id is not None:
                return turn.user_id == subject.user_id or turn.session_id in sessions
            return turn.thread_id == subject.thread_id

        # What every reader acknowledged goes anyway; what is left is usually little.
        await purge_acknowledged(self._js, subjects.TURN_RECORDED)
        doomed = [
            sequence
            async for sequence, data in stored_events(self._js, subjects.TURN_RECORDED)
            if theirs(data)
        ]
        erased = await forget_events(self._js, doomed)
        # Every reader of turns keeps those it gave up on (the crisis classifier too), not only
        # memory's own consumer: ">" reaches all of them.
        async for letter in dead_letters(self._js, ">"):
            if letter.original_subject == subjects.TURN_RECORDED and theirs(letter.data):
                erased += await forget_dead_letter(self._js, letter.sequence)
        return erased


async def _threads_of(conn: AsyncConnection[DictRow], subject: _Subject) -> list[str]:
    """The threads the user is known in (only a write under the user's lock adds one)."""
    cursor = await conn.execute(
        "SELECT thread_id FROM memory.threads WHERE user_id = %s", (subject.user_id,)
    )
    return [row["thread_id"] for row in await cursor.fetchall()]


async def _sessions_and_threads(
    conn: AsyncConnection[DictRow], subject: _Subject
) -> tuple[list[str], list[str]]:
    """The voice sessions whose transcripts go, and the threads involved."""
    if subject.user_id is not None:
        cursor = await conn.execute(
            """
            SELECT session_id FROM memory.turns WHERE user_id = %(user)s
            UNION SELECT t.session_id FROM memory.turns t
                  JOIN memory.threads th USING (thread_id)
                  WHERE th.user_id = %(user)s AND t.user_id IS NULL
            UNION SELECT c.session_id FROM memory.turn_classifications c
                  JOIN memory.threads th USING (thread_id)
                  WHERE th.user_id = %(user)s AND NOT EXISTS (
                      SELECT 1 FROM memory.turns t
                      WHERE t.session_id = c.session_id AND t.user_id <> %(user)s
                  )
            UNION SELECT session_id FROM memory.committed_sessions WHERE owner_key = %(owner)s
            UNION SELECT source_session_id FROM memory.facts WHERE owner_key = %(owner)s
            UNION SELECT source_session_id FROM memory.session_summaries
                  WHERE owner_key = %(owner)s
            UNION SELECT source_session_id FROM memory.response_rules WHERE owner_key = %(owner)s
            UNION SELECT source_session_id FROM memory.owner_settings WHERE owner_key = %(owner)s
            """,
            {"user": subject.user_id, "owner": subject.owner},
        )
        sessions = [row["session_id"] for row in await cursor.fetchall() if row["session_id"]]
        return sessions, await _threads_of(conn, subject)
    cursor = await conn.execute(
        """
        SELECT session_id FROM memory.turns WHERE thread_id = %(thread)s
        UNION SELECT session_id FROM memory.turn_classifications WHERE thread_id = %(thread)s
        UNION SELECT session_id FROM memory.committed_sessions WHERE thread_id = %(thread)s
        """,
        {"thread": subject.thread_id},
    )
    sessions = [row["session_id"] for row in await cursor.fetchall()]
    return sessions, [subject.thread_id] if subject.thread_id else []


# Rows sourced from the subject's sessions (or thread) go, whoever owns them. A thread the
# user shared with someone else keeps its row, without the user's id.
_BY_USER: Final[dict[str, LiteralString]] = {
    "turns": "DELETE FROM memory.turns WHERE session_id = ANY(%(sessions)s)",
    "turn_classifications": (
        "DELETE FROM memory.turn_classifications WHERE session_id = ANY(%(sessions)s)"
    ),
    "facts": (
        "DELETE FROM memory.facts "
        "WHERE owner_key = %(owner)s OR source_session_id = ANY(%(sessions)s)"
    ),
    "session_summaries": (
        "DELETE FROM memory.session_summaries "
        "WHERE owner_key = %(owner)s OR source_session_id = ANY(%(sessions)s)"
    ),
    "response_rules": (
        "DELETE FROM memory.response_rules "
        "WHERE owner_key = %(owner)s OR source_session_id = ANY(%(sessions)s)"
    ),
    "owner_settings": (
        "DELETE FROM memory.owner_settings "
        "WHERE owner_key = %(owner)s OR source_session_id = ANY(%(sessions)s)"
    ),
    "committed_sessions": (
        "DELETE FROM memory.committed_sessions "
        "WHERE owner_key = %(owner)s OR session_id = ANY(%(sessions)s)"
    ),
    "threads": (
        "DELETE FROM memory.threads th WHERE th.user_id = %(user)s AND NOT EXISTS "
        "(SELECT 1 FROM memory.turns t WHERE t.thread_id = th.thread_id)"
    ),
}
_BY_THREAD: Final[dict[str, LiteralString]] = {
    "turns": "DELETE FROM memory.turns WHERE thread_id = %(thread)s",
    "turn_classifications": (
        "DELETE FROM memory.turn_classifications "
        "WHERE thread_id = %(thread)s OR session_id = ANY(%(sessions)s)"
    ),
    "facts": (
        "DELETE FROM memory.facts WHERE owner_key = %(owner)s OR source_thread_id = %(thread)s"
    ),
    "session_summaries": (
        "DELETE FROM memory.session_summaries "
        "WHERE owner_key = %(owner)s OR source_thread_id = %(thread)s"
    ),
    "response_rules": (
        "DELETE FROM memory.response_rules "
        "WHERE owner_key = %(owner)s OR source_thread_id = %(thread)s"
    ),
    "owner_settings": (
        "DELETE FROM memory.owner_settings "
        "WHERE owner_key = %(owner)s OR source_thread_id = %(thread)s"
    ),
    "committed_sessions": (
        "DELETE FROM memory.committed_sessions WHERE owner_key = %(owner)s "
        "OR thread_id = %(thread)s OR session_id = ANY(%(sessions)s)"
    ),
    "threads": "DELETE FROM memory.threads WHERE thread_id = %(thread)s",
}


async def _record_unfinished(
    conn: AsyncConnection[DictRow], subject: _Subject, sessions: list[str], threads: list[str]
) -> _Unfinished:
    """Record the erasure as unfinished, merged with an earlier try of the same owner that did
    not finish (its sessions are gone from the tables, so only this record still names them)."""
    cursor = await conn.execute(
        """
        INSERT INTO memory.erasures AS e
            (owner_key, erasure_id, user_id, thread_id, session_ids, thread_ids)
        VALUES (%(owner)s, %(erasure)s, %(user)s, %(thread)s, %(sessions)s, %(threads)s)
        ON CONFLICT (owner_key) DO UPDATE SET
            erasure_id = EXCLUDED.erasure_id,
            session_ids = ARRAY(
                SELECT DISTINCT s FROM unnest(e.session_ids || EXCLUDED.session_ids) AS s
                ORDER BY s),
            thread_ids = ARRAY(
                SELECT DISTINCT t FROM unnest(e.thread_ids || EXCLUDED.thread_ids) AS t
                ORDER BY t)
        RETURNING erasure_id, user_id, thread_id, session_ids, thread_ids, requested_at
        """,
        {
            "owner": subject.owner,
            "erasure": f"er_{uuid.uuid4().hex}",
            "user": subject.user_id,
            "thread": subject.thread_id,
            "sessions": sessions,
            "threads": threads,
        },
    )
    row = await cursor.fetchone()
    assert row is not None  # an upsert with RETURNING returns its row
    return _Unfinished.from_row(row)


ERASED_SESSION_DAYS: Final = 31
"""How long an erased session (or owner) is remembered: longer than any event waits in
JetStream."""


async def _remember_erased(conn: AsyncConnection[DictRow], sessions: list[str]) -> None:
    """Remember the erased sessions (hashes of their ids), and forget the sessions and owners
    remembered long enough."""
    await remember_erased_sessions(conn, sessions)
    await conn.execute(
        "DELETE FROM memory.erased_sessions WHERE erased_at < now() - make_interval(days => %s)",
        (ERASED_SESSION_DAYS,),
    )
    await conn.execute(
        "DELETE FROM memory.erased_owners WHERE erased_at < now() - make_interval(days => %s)",
        (ERASED_SESSION_DAYS,),
    )


async def _delete_rows(
    conn: AsyncConnection[DictRow], subject: _Subject, sessions: list[str]
) -> dict[str, int]:
    """Delete the subject's rows from every memory table; rows deleted per table."""
    params = {
        "user": subject.user_id,
        "thread": subject.thread_id,
        "owner": subject.owner,
        "sessions": sessions,
    }
    by_user = subject.user_id is not None
    statements = _BY_USER if by_user else _BY_THREAD
    counts: dict[str, int] = {}
    for table in MEMORY_TABLES:
        cursor = await conn.execute(statements[table], params)
        counts[table] = max(cursor.rowcount, 0)
    if by_user:
        await conn.execute(
            "UPDATE memory.threads SET user_id = NULL WHERE user_id = %(user)s", params
        )
    return counts
