"""Postgres: versioned migrations with yoyo, and an async psycopg 3 connection pool.

Each owner service keeps its tables, and yoyo's record of its migrations, in a schema named
after it, with its migrations in its own folder: services migrate independently.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

DictPool = AsyncConnectionPool[AsyncConnection[DictRow]]
"""A pool whose connections return each row as a dict."""

POSTGRES_OUTAGES: Final = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
)
"""Postgres is down or unreachable: a connection refused or lost, a pool with no connection to
give (``timeout``) or closed. Not the caller's fault, and over once it is back."""


def _yoyo_url(database_url: str, schema: str) -> str:
    """yoyo's URL for psycopg 3, keeping its bookkeeping tables in the owner's schema."""
    scheme, rest = database_url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg"
    separator = "&" if "?" in rest else "?"
    return f"{scheme}://{rest}{separator}schema={schema}"


# Every service migrates under this one advisory lock, so services and replicas starting at
# the same moment never race on creating schemas or yoyo's tables.
_MIGRATION_LOCK = 0x6F63_7600
LOCK_POLL_SECONDS: Final = 0.2
"""How often a service waiting its turn to migrate asks for the lock again, and so how soon it
notices it was stopped meanwhile."""


class MigrationAbandonedError(Exception):
    """The caller stopped waiting for its turn to migrate (the service was stopped)."""


def apply_migrations(
    database_url: str,
    migrations: Path,
    owner: str,
    *,
    abandoned: threading.Event | None = None,
) -> int:
    """Apply every migration in ``migrations`` not yet applied; returns how many ran.

    Replicas and services starting together take turns, so each migration runs once. A turn is
    asked for rather than waited on in the server (``pg_advisory_lock`` would hold this thread
    until another replica's migrations end, and a stopped service with it): once ``abandoned``
    is set, the wait ends with ``MigrationAbandonedError``.
    """
    abandoned = abandoned or threading.Event()
    with psycopg.connect(database_url, autocommit=True) as guard:
        while not _take_turn(guard):
            if abandoned.wait(LOCK_POLL_SECONDS):
                raise MigrationAbandonedError(owner)
        try:
            guard.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(owner)))
            backend = get_backend(_yoyo_url(database_url, owner))
            with backend.lock():
                pending = backend.to_apply(read_migrations(str(migrations)))
                backend.apply_migrations(pending)
        finally:
            guard.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    if pending:
        log.info("migrations applied", extra={"owner": owner, "count": len(pending)})
    return len(pending)


def _take_turn(guard: psycopg.Connection[Any]) -> bool:
    row = guard.execute("SELECT pg_try_advisory_lock(%s)", (_MIGRATION_LOCK,)).fetchone()
    return bool(row and row[0])


async def apply_migrations_async(database_url: str, migrations: Path, owner: str) -> int:
    """``apply_migrations`` off the event loop (yoyo is synchronous). Cancelled while waiting
    its turn, the thread stops waiting too: the process can exit (``asyncio.run`` waits for
    its threads)."""
    abandoned = threading.Event()
    try:
        return await asyncio.to_thread(
            apply_migrations, database_url, migrations, owner, abandoned=abandoned
        )
    except asyncio.CancelledError:
        abandoned.set()
        raise


@asynccontextmanager
async def connection_pool(
    database_url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 30.0,
    check_connections: bool = True,
    session_settings: Mapping[str, str] | None = None,
) -> AsyncIterator[DictPool]:
    """An open pool whose connections return rows as dicts.

    ``timeout``: how long a caller waits for a connection before ``PoolTimeout``.
    ``check_connections``: test each connection as it is handed out (one round trip), so one
    broken by a Postgres restart is replaced instead of failing the caller's first statement.
    On by default: every service has to outlive a Postgres restart.
    ``session_settings``: server settings for every connection (``SET name = value``).
    """
    kwargs: dict[str, Any] = {"row_factory": dict_row}
    if session_settings:
        kwargs["options"] = " ".join(
            f"-c {name}={value}" for name, value in session_settings.items()
        )
    pool = AsyncConnectionPool(
        database_url,
        connection_class=AsyncConnection[DictRow],
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=kwargs,
        check=AsyncConnectionPool.check_connection if check_connections else None,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()
