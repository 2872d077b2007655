"""Postgres: versioned migrations with yoyo, and an async psycopg 3 connection pool.

Each owner service keeps its tables in its own schema and its migrations in its own folder,
tracked in its own yoyo table, so services migrate independently of each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)


def _yoyo_url(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}"


def apply_migrations(database_url: str, migrations: Path, owner: str) -> int:
    """Apply every migration in ``migrations`` not yet applied; returns how many ran.

    yoyo takes a lock, so replicas starting together migrate once.
    """
    backend = get_backend(_yoyo_url(database_url), migration_table=f"_yoyo_migration_{owner}")
    pending = backend.to_apply(read_migrations(str(migrations)))
    with backend.lock():
        backend.apply_migrations(pending)
    if pending:
        log.info("migrations applied", extra={"owner": owner, "count": len(pending)})
    return len(pending)


async def apply_migrations_async(database_url: str, migrations: Path, owner: str) -> int:
    """``apply_migrations`` off the event loop (yoyo is synchronous)."""
    return await asyncio.to_thread(apply_migrations, database_url, migrations, owner)


@asynccontextmanager
async def connection_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 8
) -> AsyncIterator[AsyncConnectionPool]:
    """An open pool whose connections return rows as dicts."""
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()
