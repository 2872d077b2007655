"""The retention job: crisis-log rows older than the retention period, and exercise runs of
sessions long over, are deleted on a schedule by every replica (deleting twice is harmless)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from opencouch.tools.store import ToolsStore

log = logging.getLogger(__name__)


async def purge_expired(
    store: ToolsStore, crisis_log_retention: timedelta, exercise_retention: timedelta
) -> tuple[int, int]:
    """Delete what is past its retention; returns (crisis-log rows, exercise runs) deleted."""
    crisis_rows = await store.purge_crisis_log(crisis_log_retention)
    exercise_rows = await store.purge_exercise_runs(exercise_retention)
    if crisis_rows or exercise_rows:
        log.info(
            "retention purge",
            extra={"crisis_log_rows": crisis_rows, "exercise_runs": exercise_rows},
        )
    return crisis_rows, exercise_rows


async def run_retention(
    store: ToolsStore,
    *,
    crisis_log_retention: timedelta,
    exercise_retention: timedelta,
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Purge now and then every ``interval`` seconds until ``stop`` is set; errors wait a turn."""
    while not stop.is_set():
        try:
            await purge_expired(store, crisis_log_retention, exercise_retention)
        except Exception as error:
            log.warning("retention purge failed", extra={"error": type(error).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
