"""How long ``recall_saved_memory``'s search takes over 10,000 saved facts of one user.

Runs the memory service's own search (full-text, ranked, numbered) against a fresh database on
the Postgres at ``DATABASE_URL``, with a realistic mix of queries, some matching many facts.
The floor is a ``SELECT 1`` round trip on the same pool, measured in the same run, so the ratio
shows what the search adds on this machine. Prints one JSON line; exits 1 when the median
search takes 5 ms or more.

    uv run python benchmarks/bench_memory_recall.py [--facts 10000] [--runs 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from opencouch.memory.intent import normalise
from opencouch.memory.memory_store import MemoryStore
from opencouch.memory.service import MIGRATIONS, SESSION_SETTINGS
from opencouch.runtime.postgres import apply_migrations, connection_pool

LIMIT_MS = 5.0
OWNER = "user:bench"

RELATIONS = [
    "sister",
    "brother",
    "mother",
    "father",
    "partner",
    "friend",
    "cousin",
    "aunt",
    "uncle",
    "son",
    "daughter",
    "boss",
]
NAMES = [
    "Ana",
    "Tom",
    "Maria",
    "Sam",
    "Lee",
    "Priya",
    "Omar",
    "Chen",
    "Sofia",
    "Luca",
    "Aisha",
    "Jonas",
    "Mei",
    "Kofi",
    "Elena",
    "Ravi",
    "Nina",
    "Pablo",
    "Yara",
    "Igor",
    "Zoe",
    "Hugo",
    "Lina",
    "Marco",
    "Ines",
    "Tariq",
    "Hana",
    "Felix",
    "Rosa",
    "Ahmed",
    "Clara",
    "Diego",
    "Leila",
]
CITIES = [
    "Lisbon",
    "Leeds",
    "Porto",
    "Berlin",
    "Dublin",
    "Toronto",
    "Sydney",
    "Madrid",
    "Paris",
    "Oslo",
    "Lagos",
    "Pune",
]
WORK = [
    "nights",
    "weekends",
    "from home",
    "in a hospital",
    "in a school",
    "at a bakery",
    "in retail",
    "as a nurse",
    "as a driver",
    "in a warehouse",
]
FOODS = [
    "peanuts",
    "shellfish",
    "gluten",
    "dairy",
    "eggs",
    "soy",
    "penicillin",
    "pollen",
    "cats",
    "dust",
]
PETS = ["dogs", "cats", "rabbits", "birds", "fish"]
QUERIES = [
    "sister",
    "what is my sister called",
    "where do I work",
    "allergic to peanuts",
    "my dog",
    "Lisbon",
    "night shifts in a hospital",
    "brother Tom",
    "who is Priya",
    "what do you remember about my family",
]


def facts(count: int, rng: random.Random) -> Iterator[str]:
    """``count`` different facts in the extractor's first-person style."""
    seen: set[str] = set()
    templates: list[Callable[[], str]] = [
        lambda: f"My {rng.choice(RELATIONS)} is called {rng.choice(NAMES)} {rng.choice(NAMES)}.",
        lambda: (
            f"I work {rng.choice(WORK)} in {rng.choice(CITIES)} on project {rng.randint(1, 400)}."
        ),
        lambda: (
            f"I live in {rng.choice(CITIES)} with my {rng.choice(RELATIONS)} {rng.choice(NAMES)}."
        ),
        lambda: f"I am allergic to {rng.choice(FOODS)} since {rng.randint(1950, 2024)}.",
        lambda: f"I have {rng.randint(2, 60)} {rng.choice(PETS)} named after {rng.choice(NAMES)}.",
    ]
    while len(seen) < count:
        text = rng.choice(templates)()
        if normalise(text) not in seen:
            seen.add(normalise(text))
            yield text


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A fresh database on ``server``, dropped afterwards."""
    name = f"opencouch_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def fill(database_url: str, count: int) -> None:
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(days=365)
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor() as cursor,
        cursor.copy(
            "COPY memory.facts (owner_key, fact_text, fact_key, source_session_id, "
            "source_thread_id, stated_at) FROM STDIN"
        ) as copy,
    ):
        for n, text in enumerate(facts(count, rng)):
            copy.write_row(
                (
                    OWNER,
                    text,
                    normalise(text),
                    f"vs_{n % 500:032x}",
                    "bench-thread",
                    start + timedelta(minutes=n * 50),
                )
            )
    # Steady state, as autovacuum leaves a table: statistics and the visibility map.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE memory.facts")


async def timed(runs: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    for warm in range(20):
        await call(warm)
    times = []
    for run in range(runs):
        started = time.perf_counter()
        await call(run)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(database_url: str, runs: int) -> dict[str, float]:
    async with connection_pool(database_url, max_size=2, session_settings=SESSION_SETTINGS) as pool:
        store = MemoryStore(pool)

        async def search(run: int) -> object:
            return await store.search(OWNER, QUERIES[run % len(QUERIES)], ("fact", "session"), 5)

        async def floor(_: int) -> object:
            async with pool.connection() as conn:
                return await (await conn.execute("SELECT 1")).fetchone()

        found = await store.search(OWNER, "what is my sister called", ("fact", "session"), 5)
        assert found, "search finds nothing"
        assert "sister" in found[0].item.text.lower(), "search finds the wrong thing"
        recall = await timed(runs, search)
        baseline = await timed(runs, floor)
    p50 = statistics.median(recall)
    return {
        "recall_p50_ms": round(p50, 3),
        "recall_p95_ms": round(statistics.quantiles(recall, n=20)[18], 3),
        "floor_p50_ms": round(statistics.median(baseline), 3),
        "ratio_to_floor": round(p50 / statistics.median(baseline), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with scratch_database(server) as database_url:
        apply_migrations(database_url, MIGRATIONS, owner="memory")
        fill(database_url, args.facts)
        result = asyncio.run(measure(database_url, args.runs))
    print(json.dumps({"benchmark": "memory_recall", "facts": args.facts, **result}))
    sys.exit(0 if result["recall_p50_ms"] < LIMIT_MS else 1)


if __name__ == "__main__":
    main()
