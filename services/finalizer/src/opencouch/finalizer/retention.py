"""The retention job: arcs kept a day after their session is finalized, feedback 180 days (by
default), erasure markers while they matter."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import FinalizationStore

log = logging.getLogger(__name__)


async def apply_retention(
    store: FinalizationStore, settings: FinalizerSettings, stop: asyncio.Event
) -> None:
    """Every ``retention_interval_seconds`` until ``stop``: delete what has expired.

    Every replica runs it; the deletes are idempotent, so running twice costs only a query.
    """
    while not stop.is_set():
        try:
            deleted = await store.apply_retention(
                settings.erased_session_retention_days, settings.arc_retention_hours
            )
        except Exception as error:  # Postgres away: the next round catches up
            log.warning("retention job failed", extra={"error": type(error).__name__})
        else:
            if any(deleted.values()):
                log.info("expired rows deleted", extra=deleted)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retention_interval_seconds)
