"""A session's end waits at least as long as memory (and the crisis classifier before it) keep
retrying a turn: no finalization fails while a turn it waits for may still be stored."""

from __future__ import annotations

from opencouch.finalizer.settings import FinalizerSettings
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.jetstream import Redelivery


def test_the_finalizer_waits_as_long_as_memory_retries_a_turn() -> None:
    finalizer = FinalizerSettings()
    memory = MemorySettings()
    assert finalizer.memory_wait_seconds >= memory.turn_redelivery.horizon
    # The crisis level comes from the tools service's consumer (default policy), then memory's.
    assert finalizer.memory_wait_seconds >= Redelivery().horizon
    # And the session end itself is delivered for at least that long before it is given up.
    assert finalizer.redelivery.horizon >= finalizer.memory_wait_seconds
