"""Voice sessions whose calls this gateway process saw refused lately.

A pure tool is asked while its call's claim is decided (see ``tool_calls``), so a call the claim
then refuses has already reached the tool's owner. Once, that is the price of answering every
admitted call a round trip sooner. A client that goes on calling after its refusal (over a rate
limit, or on a session that has ended) would make the owner work for every call the gateway
refuses, and the limits would not protect the owners from it. So once a session's call has been
refused, its next pure calls through this process are claimed first, as every other tool's are,
until the refusal may have lapsed: the rate limit's ``Retry-After``, or a minute at most for a
session that has ended or is unknown (those never lapse; the minute bounds what is kept).

This only orders a call's work: the claim still decides every call, so a refusal that lapsed
sooner costs the call one round trip, never its answer. Kept in memory, per process, bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from cachetools import TLRUCache

LONGEST_SECONDS: Final = 60.0
"""The longest a refusal is remembered."""

MOST_SESSIONS: Final = 10_000
"""The most sessions remembered at once; the one whose refusal lapses first makes room."""


def _until(_session_id: str, until: float, _now: float) -> float:
    return until


class RefusedSessions:
    """Which sessions had a call refused lately, each until its refusal may have lapsed."""

    def __init__(
        self,
        *,
        most: int = MOST_SESSIONS,
        longest_seconds: float = LONGEST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._until: TLRUCache[str, float] = TLRUCache(maxsize=most, ttu=_until, timer=clock)
        self._longest = longest_seconds
        self._clock = clock

    def refused(self, session_id: str, for_seconds: float | None = None) -> None:
        """A call of ``session_id`` was refused, for ``for_seconds`` (a rate limit's retry
        after), or for good (an ended or unknown session)."""
        seconds = self._longest if for_seconds is None else min(for_seconds, self._longest)
        self._until[session_id] = self._clock() + seconds

    def lately(self, session_id: str) -> bool:
        """Whether a call of ``session_id`` was refused, and the refusal may still hold."""
        return session_id in self._until
