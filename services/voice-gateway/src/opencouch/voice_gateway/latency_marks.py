"""The browser's latency marks, sent with each turn, exported as histograms once each.

The session's marks (secret minted, call connected) come with every turn of the session; they
are counted with its first turn. A turn may be retried: its marks count with the request that
recorded it, which the turn's own claim tells, so counting costs no round trip of its own.
"""

from __future__ import annotations

from opencouch.contracts.voice_api import TurnRequest
from opencouch.runtime.metrics import BROWSER_LATENCY_SECONDS


def record_latency_marks(body: TurnRequest, *, first_turn: bool) -> None:
    """Export a freshly recorded turn's latency marks, and the session's with its first turn.

    Called once per turn (its first successful recording), so retries never count twice.
    """
    marks = body.latency
    if marks is None:
        return
    observed = [
        *(("first_audio", ms) for ms in [marks.first_audio_ms] if ms is not None),
        *(("tool_round_trip", ms) for ms in marks.tool_round_trips_ms),
    ]
    if first_turn:
        observed += [
            (mark, ms)
            for mark, ms in (
                ("session_minted", marks.session_minted_ms),
                ("connected", marks.connected_ms),
            )
            if ms is not None
        ]
    for mark, ms in observed:
        BROWSER_LATENCY_SECONDS.labels(mark).observe(ms / 1000)
