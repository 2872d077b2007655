"""The browser's latency marks, sent with each turn, exported as histograms once each.

The session's marks (secret minted, call connected) come with every turn of the session, and a
turn may be retried: Redis remembers which were counted. A mark is a measurement, never worth
failing a turn over: if Redis cannot say, the marks are skipped.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from opencouch.contracts.voice_api import TurnRequest
from opencouch.runtime.metrics import BROWSER_LATENCY_SECONDS
from opencouch.voice_gateway.state import Gateway
from opencouch.voice_gateway.tokens import VoiceSessionClaims

log = logging.getLogger(__name__)


async def record_latency_marks(
    gateway: Gateway, claims: VoiceSessionClaims, body: TurnRequest
) -> None:
    """Export the turn's latency marks: the session's once per session, the turn's once."""
    marks = body.latency
    if marks is None:
        return
    session_marks = {
        "session_minted": marks.session_minted_ms,
        "connected": marks.connected_ms,
    }
    turn_marks = [
        *(("first_audio", ms) for ms in [marks.first_audio_ms] if ms is not None),
        *(("tool_round_trip", ms) for ms in marks.tool_round_trips_ms),
    ]
    has_session_marks = any(ms is not None for ms in session_marks.values())
    if not has_session_marks and not turn_marks:
        return
    try:
        first_for_session, first_for_turn = await gateway.sessions.first_latency_report(
            claims.session_id,
            body.client_turn_id,
            session_marks=has_session_marks,
            turn_marks=bool(turn_marks),
        )
    except (RedisError, OSError) as error:
        log.warning("latency marks skipped", extra={"error": type(error).__name__})
        return
    observed = [
        *((mark, ms) for mark, ms in session_marks.items() if ms is not None and first_for_session),
        *(turn_marks if first_for_turn else []),
    ]
    for mark, ms in observed:
        BROWSER_LATENCY_SECONDS.labels(mark).observe(ms / 1000)
