"""A session's end waits at least as long as memory (and the crisis classifier before it) keep
retrying a turn: no finalization fails while a turn it waits for may still be stored."""

from __future__ import annotations

from opencouch.finalizer.settings import FinalizerSettings
from opencouch.memory.settings import MemorySettings
from opencouch.runtime.jetstream import Redelivery
from opencouch.tools.settings import ToolsSettings
from opencouch.voice_gateway.settings import GatewaySettings


def test_the_finalizer_waits_as_long_as_memory_retries_a_turn() -> None:
    finalizer = FinalizerSettings()
    memory = MemorySettings()
    assert finalizer.memory_wait_seconds >= memory.turn_redelivery.horizon
    # The crisis level comes from the tools service's consumer (default policy), then memory's.
    assert finalizer.memory_wait_seconds >= Redelivery().horizon
    # And the session end itself is delivered for at least that long before it is given up.
    assert finalizer.redelivery.horizon >= finalizer.memory_wait_seconds


def test_a_service_gives_up_on_its_stores_before_its_callers_give_up_on_it() -> None:
    """Else a wedged Redis or a Postgres that is down is the caller's timeout, never the
    service's own error reply (``service_unavailable``)."""
    gateway = GatewaySettings()
    finalizer = FinalizerSettings()
    memory_callers = min(gateway.memory_timeout_seconds, finalizer.memory_timeout_seconds)
    memory, tools = MemorySettings(), ToolsSettings()
    assert memory.redis_timeout_seconds < memory_callers
    assert memory.db_timeout_seconds < memory_callers
    assert tools.redis_timeout_seconds < gateway.tool_timeout_seconds
    assert tools.db_timeout_seconds < gateway.tool_timeout_seconds
