"""Migrations under the shared advisory lock: replicas take turns, and one stopped while it
waits its turn exits rather than waiting on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from pathlib import Path

import psycopg

from opencouch.runtime.postgres import _MIGRATION_LOCK, apply_migrations, apply_migrations_async


def write_migration(folder: Path, owner: str) -> Path:
    folder.mkdir()
    (folder / "0001_notes.sql").write_text(f"CREATE TABLE {owner}.notes (id int PRIMARY KEY);\n")
    return folder


def schema_exists(database_url: str, owner: str) -> bool:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (owner,)
        ).fetchone()
    return found is not None


def drop_schema(database_url: str, owner: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {owner} CASCADE")


def test_a_service_stopped_while_another_migrates_exits_without_migrating(
    database_url: str, tmp_path: Path
) -> None:
    # A replica waiting in pg_advisory_lock held its thread, and asyncio.run waits for its
    # threads: SIGTERM could not stop it until the other replica's migrations were done.
    owner = f"test_wait_{uuid.uuid4().hex[:8]}"
    migrations = write_migration(tmp_path / "migrations", owner)

    async def start_then_stop() -> None:
        starting = asyncio.create_task(apply_migrations_async(database_url, migrations, owner))
        await asyncio.sleep(0.5)
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting

    with psycopg.connect(database_url, autocommit=True) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            service = threading.Thread(target=asyncio.run, args=(start_then_stop(),), daemon=True)
            service.start()
            service.join(timeout=10)
            stopped = not service.is_alive()
        finally:
            other_replica.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    try:
        assert stopped, "the stopped service still waited for its turn to migrate"
        assert not schema_exists(database_url, owner)
    finally:
        service.join(timeout=10)
        drop_schema(database_url, owner)


def test_a_service_waits_its_turn_then_migrates_once(database_url: str, tmp_path: Path) -> None:
    owner = f"test_turn_{uuid.uuid4().hex[:8]}"
    migrations = write_migration(tmp_path / "migrations", owner)
    ran: list[int] = []
    try:
        with psycopg.connect(database_url, autocommit=True) as other_replica:
            other_replica.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                waiting = threading.Thread(
                    target=lambda: ran.append(apply_migrations(database_url, migrations, owner))
                )
                waiting.start()
                waiting.join(timeout=0.6)
                assert waiting.is_alive(), "migrated while another replica held the turn"
            finally:
                other_replica.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
        waiting.join(timeout=30)
        assert ran == [1]
        assert apply_migrations(database_url, migrations, owner) == 0
    finally:
        drop_schema(database_url, owner)
