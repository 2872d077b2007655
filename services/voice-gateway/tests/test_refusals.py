"""What the gateway remembers of refused sessions: until the refusal may lapse, bounded."""

from __future__ import annotations

from opencouch.voice_gateway.refusals import RefusedSessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rate_limited_session_is_remembered_until_its_retry_after() -> None:
    clock = Clock()
    refused = RefusedSessions(clock=clock)
    assert not refused.lately("vs_a")
    refused.refused("vs_a", 5)
    clock.now += 4.9
    assert refused.lately("vs_a")
    clock.now += 0.2
    assert not refused.lately("vs_a")


def test_an_ended_session_is_remembered_at_most_a_bounded_time() -> None:
    clock = Clock()
    refused = RefusedSessions(clock=clock, longest_seconds=60)
    refused.refused("vs_ended")
    refused.refused("vs_limited_long", 3600)  # a long Retry-After is held no longer either
    clock.now += 59
    assert refused.lately("vs_ended")
    assert refused.lately("vs_limited_long")
    clock.now += 2
    assert not refused.lately("vs_ended")
    assert not refused.lately("vs_limited_long")


def test_at_most_so_many_sessions_are_kept() -> None:
    clock = Clock()
    refused = RefusedSessions(clock=clock, most=3)
    for n in range(5):
        refused.refused(f"vs_{n}", 10 + n)
    remembered = [n for n in range(5) if refused.lately(f"vs_{n}")]
    assert len(remembered) == 3
    assert 4 in remembered  # the newest is always kept
