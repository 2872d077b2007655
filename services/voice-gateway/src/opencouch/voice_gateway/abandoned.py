"""Ending what nobody ended: a tab closed mid-conversation sends no ``/end``.

Without this, such a session is never finalized: no summary and no memory of a conversation
the person simply walked away from, and (in incognito too) its scratch state at the tools is
kept until it expires. The page ends a session its own reload left open, but a closed tab, a
lost phone or a crashed browser never comes back to.

So the gateway ends it once no token of the session could any more (its maximum duration, the
token's grace and a margin after it started), exactly as an ``/end`` with no body would: saved,
without feedback; or, when the person's own end came and failed (NATS down), as they chose. A
conversation whose last session was ended as ``continued`` (the call dropped) and never went
on is finalized the same way, once no session of it could still end it.

Every gateway sweeps. Redis leases each due entry to one gateway at a time, and an end is
idempotent, so replicas neither double an end nor lose one: an entry whose end failed (NATS
down) is taken again once its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from opencouch.contracts.voice_api import EndRequest
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.metrics import VOICE_SESSIONS_ABANDONED
from opencouch.voice_gateway.finalization import end_session, finalize_deferred
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.voice_sessions import DEFAULT_CHOICE, Unended

log = logging.getLogger(__name__)

LEASE_SECONDS: Final = 120.0
"""How long a gateway holds a due entry before another may take it (an end takes seconds)."""
BATCH: Final = 50


async def end_abandoned(gateway: Gateway, now: float | None = None) -> int:
    """End everything due at ``now`` (default: now); how many were ended.

    One failed end (a dependency down) is left to its lease and does not stop the rest."""
    ended = 0
    while True:
        due = await gateway.sessions.due(time.time() if now is None else now, LEASE_SECONDS, BATCH)
        for unended in due:
            try:
                ended += await _end(gateway, unended)
            except ServiceError as error:
                log.warning(
                    "abandoned end failed; retried later",
                    extra={"code": error.code.value, "key_kind": _kind(unended)},
                )
        if len(due) < BATCH:
            return ended


async def run_sweeper(gateway: Gateway, every_seconds: float) -> None:
    """``end_abandoned`` every ``every_seconds`` until cancelled; a failed pass is retried."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await end_abandoned(gateway)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # Redis unreachable: the next pass tries again
            log.warning("abandoned sweep failed", extra={"error": type(error).__name__})


async def _end(gateway: Gateway, unended: Unended) -> int:
    if unended.session_id is not None:
        claims = await gateway.sessions.unended_session(unended.session_id)
        if claims is None:
            # Its record expired before any gateway could end it (the sweep was off or down).
            log.warning("abandoned session expired unended", extra={"key_kind": "session"})
            await gateway.sessions.settle(unended)
            return 0
        # As the person chose, when their own end came and failed; else saved.
        choice = await gateway.sessions.end_choice(claims.session_id) or DEFAULT_CHOICE
        body = EndRequest(save=choice.save, feedback=choice.feedback)
        status, reply = await end_session(gateway, body, claims, wait_seconds=0)
        VOICE_SESSIONS_ABANDONED.labels("session").inc()
        log.info(
            "abandoned session ended",
            extra={
                "session_id": claims.session_id,
                "memory_mode": claims.memory_mode.value,
                "turn_count": reply.turn_count,
                "status": status,
            },
        )
        return 1
    if unended.owner_id is None or unended.thread_id is None:
        await gateway.sessions.settle(unended)
        return 0
    # Taking the last of them settles the entry (as it does once they have expired); those whose
    # end could not be published are due again when this lease would have run out.
    count = await finalize_deferred(
        gateway,
        unended.owner_id,
        unended.thread_id,
        None,
        retry_at=time.time() + LEASE_SECONDS,
    )
    if count:
        VOICE_SESSIONS_ABANDONED.labels("continued").inc(count)
        log.info(
            "abandoned conversation finalized",
            extra={"thread_id": unended.thread_id, "sessions": count},
        )
    return count


def _kind(unended: Unended) -> str:
    return "session" if unended.session_id is not None else "conversation"
