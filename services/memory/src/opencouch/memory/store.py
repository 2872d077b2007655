"""SQL for the memory schema. Every statement is parameterised; callers own no transactions."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from opencouch.contracts.events import TurnRecorded
from opencouch.contracts.memory import StoredTurn
from opencouch.runtime.postgres import DictPool


def owner_key(thread_id: str, user_id: str | None) -> str:
    """Durable memory belongs to the user when known, else to the thread."""
    return f"user:{user_id}" if user_id else f"thread:{thread_id}"


class MemoryStore:
    """Reads and writes of the memory service's tables."""

    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def record_turn(self, turn: TurnRecorded) -> bool:
        """Store ``turn`` once; False when it was already stored (a redelivery or retry)."""
        async with self._pool.connection() as conn, conn.transaction():
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
                    thread_id, client_turn_id, session_id, user_text, assistant_text,
                    route, response_style, tool_calls, outcome, recorded_at
                ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT turns_once_per_client_id DO NOTHING
                RETURNING id
                """,
                (
                    turn.thread_id,
                    turn.client_turn_id,
                    turn.session_id,
                    turn.user_text,
                    turn.assistant_text,
                    turn.route,
                    turn.response_style,
                    Jsonb([call.model_dump(mode="json") for call in turn.tool_calls]),
                    turn.outcome.value,
                    turn.recorded_at,
                ),
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

    async def session_turns(self, session_id: str) -> tuple[str | None, list[StoredTurn]]:
        """The thread and the stored turns of one voice session, oldest first."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT thread_id, client_turn_id, user_text, assistant_text, route,
                       response_style, tool_calls, outcome, recorded_at
                FROM memory.turns WHERE session_id = %s ORDER BY id
                """,
                (session_id,),
            )
            rows = await cursor.fetchall()
        thread_id = rows[0]["thread_id"] if rows else None
        turns = [
            StoredTurn.model_validate({k: v for k, v in row.items() if k != "thread_id"})
            for row in rows
        ]
        return thread_id, turns

    async def proactive_recall_enabled(self, owner: str) -> bool:
        """Whether the owner allowed saved memory to be brought up unprompted."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT proactive_recall_enabled FROM memory.owner_settings WHERE owner_key = %s",
                (owner,),
            )
            row = await cursor.fetchone()
        return bool(row and row["proactive_recall_enabled"])

    async def response_rules(self, owner: str, limit: int = 20) -> list[str]:
        """The owner's standing response preferences, oldest first."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """
                SELECT rule_text FROM memory.response_rules
                WHERE owner_key = %s ORDER BY id LIMIT %s
                """,
                (owner, limit),
            )
            rows = await cursor.fetchall()
        return [row["rule_text"] for row in rows]
