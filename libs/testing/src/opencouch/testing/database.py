"""Reading what the services stored, for tests that check it (or that nothing was)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

SERVICE_SCHEMAS = ("memory", "finalizer", "tools")
"""Every schema a service owns."""


def rows(database_url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    """The rows ``query`` returns, on a connection of its own."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def assert_no_trace(
    database_url: str, traces: Iterable[str], schemas: Iterable[str] = SERVICE_SCHEMAS
) -> None:
    """No row of any table in ``schemas`` mentions any of ``traces`` (ids, words said)."""
    traces = list(traces)
    for schema in schemas:
        for (table,) in rows(
            database_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            schema,
        ):
            dump = "\n".join(
                str(row) for row in rows(database_url, f'SELECT * FROM {schema}."{table}"')
            )
            for trace in traces:
                assert trace not in dump, f"{trace} in {schema}.{table}"
