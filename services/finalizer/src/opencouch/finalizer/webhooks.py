"""The end-of-session report: built from the finalization, signed, POSTed to the operator.

Signing follows the timestamped scheme Stripe and Vapi use: ``OpenCouch-Signature:
t=<unix seconds>,v1=<hex>``, where the hex is HMAC-SHA256, under the shared secret, of
``"<t>." + body``. A receiver recomputes it (``verify_signature``) and refuses stale stamps,
so a captured request cannot be replayed later. Every attempt carries the same
``Idempotency-Key``.

Each report is owed once (a row written with the finalization's result) and sent by whichever
replica claims it; a claim is a lease, so a replica that dies mid-send leaves it to another.
Retries back off exponentially up to ``webhook_max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import Final

import httpx

from opencouch.contracts.finalizer import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    FinalizationRecord,
    ReportTurn,
    SessionReport,
)
from opencouch.contracts.voice_api import Feedback
from opencouch.finalizer.memory_link import MemoryLink
from opencouch.finalizer.settings import FinalizerSettings
from opencouch.finalizer.store import DueReport, ReportOutbox
from opencouch.runtime.errors import ServiceError

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS: Final = 300
USER_AGENT: Final = "OpenCouch-Finalizer/1"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its stamp is recent enough.

    For receivers (and tests). Any ``v1`` entry may match, so a sender may sign with two
    secrets while one replaces the other.
    """
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if stamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, stamp).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def build_report(
    record: FinalizationRecord, feedback: Feedback | None, transcript: list[ReportTurn] | None
) -> SessionReport:
    """The report of a finalized session; the transcript only when one is given."""
    return SessionReport(
        id=f"fin_{record.session_id}",
        session_id=record.session_id,
        thread_id=record.thread_id,
        status=record.status,
        detail=record.detail,
        finalized_at=record.finalized_at,
        turn_count=record.turn_count,
        duration_seconds=record.duration_seconds,
        peak_crisis_level=record.peak_crisis_level,
        summary=record.summary,
        summary_method=record.summary_method,
        themes=record.themes,
        mood_opened=record.mood_opened,
        mood_closed=record.mood_closed,
        open_loops=record.open_loops,
        resolved_threads=record.resolved_threads,
        memories_committed=record.memories_committed,
        feedback=feedback,
        transcript=transcript,
    )


class ReportSender:
    """Sends the reports owed, from any replica; ``wake`` after owing one to send it now."""

    def __init__(
        self,
        outbox: ReportOutbox,
        memory: MemoryLink,
        http: httpx.AsyncClient,
        settings: FinalizerSettings,
        *,
        url: str,
        secret: str,
    ) -> None:
        self._outbox = outbox
        self._memory = memory
        self._http = http
        self._settings = settings
        self._url = url
        self._secret = secret
        self._due = asyncio.Event()
        # Long enough to fetch a transcript and wait out one POST, with room to spare.
        self._lease = 3 * (settings.webhook_timeout_seconds + settings.memory_timeout_seconds)

    def wake(self) -> None:
        """A report may be owed now: look without waiting for the next poll."""
        self._due.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send what is due until ``stop`` is set; database or network trouble only delays."""
        while not stop.is_set():
            try:
                await self.send_due()
            except Exception as error:  # Postgres away, say: try again at the next poll
                log.warning("report sending paused", extra={"error": type(error).__name__})
            self._due.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.webhook_poll_seconds):
                    await _first(stop, self._due)

    async def send_due(self) -> int:
        """Send every report due now; returns how many were attempted."""
        attempted = 0
        while claimed := await self._outbox.claim_due(self._lease):
            # Side by side: each claim's lease covers one send, not the batch's one after another
            # (unsent when its lease ran out, a report would be taken by another replica too).
            sent = await asyncio.gather(*map(self._send, claimed), return_exceptions=True)
            attempted += len(claimed)
            for outcome in sent:
                if isinstance(outcome, BaseException):
                    raise outcome  # the others were tried; the loop waits for the next poll
        return attempted

    async def _send(self, due: DueReport) -> None:
        source = await self._outbox.report_source(due.session_id)
        if source is None:  # erased since it was owed
            return
        record, feedback = source
        try:
            transcript = await self._transcript(record)
        except ServiceError as error:
            await self._failed(due, None, f"transcript unavailable: {error.code}")
            return
        body = build_report(record, feedback, transcript).model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            IDEMPOTENCY_HEADER: f"fin_{record.session_id}",
        }
        try:
            response = await self._http.post(
                self._url,
                content=body,
                headers=headers,
                timeout=self._settings.webhook_timeout_seconds,
            )
        except httpx.HTTPError as error:
            await self._failed(due, None, type(error).__name__)
            return
        if response.is_success:
            await self._outbox.delivered(due.session_id, response.status_code)
            log.info(
                "session report delivered",
                extra={"session_id": due.session_id, "attempt": due.attempt},
            )
            return
        await self._failed(due, response.status_code, f"HTTP {response.status_code}")

    async def _transcript(self, record: FinalizationRecord) -> list[ReportTurn] | None:
        if not self._settings.webhook_include_transcript:
            return None
        return [
            ReportTurn(
                user_text=turn.user_text,
                assistant_text=turn.assistant_text,
                outcome=turn.outcome,
                spoken_at=turn.started_at or turn.recorded_at,
            )
            for turn in await self._memory.transcript(record.session_id)
        ]

    async def _failed(self, due: DueReport, status_code: int | None, error: str) -> None:
        if due.attempt >= self._settings.webhook_max_attempts:
            await self._outbox.give_up(due.session_id, status_code, error)
            log.error(
                "session report given up",
                extra={"session_id": due.session_id, "attempts": due.attempt, "error": error},
            )
            return
        delay = min(
            self._settings.webhook_retry_first_delay_seconds * 2.0 ** min(due.attempt - 1, 16),
            self._settings.webhook_retry_max_delay_seconds,
        )
        await self._outbox.retry_later(due.session_id, delay, status_code, error)
        log.warning(
            "session report not taken; retrying",
            extra={"session_id": due.session_id, "attempt": due.attempt, "error": error},
        )


async def _first(*events: asyncio.Event) -> None:
    """Return once any of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
