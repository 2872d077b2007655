"""Settings for the memory service (env prefix ``MEMORY_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opencouch.runtime.jetstream import Redelivery
from opencouch.runtime.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    NatsServiceSettings,
)


class MemorySettings(NatsServiceSettings):
    """Where the memory service connects, how it retries, and how long it holds things."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_")
    service_name: ClassVar[str] = "memory"

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    db_pool_size: int = Field(8, ge=1)
    db_timeout_seconds: float = Field(2.0, gt=0, le=30)
    """How long a request waits for a Postgres connection before it fails.

    Shorter than the gateway's memory timeout, so Postgres down is memory's own
    ``service_unavailable``, not its callers' timeout (a stored turn is retried either way)."""
    redis_timeout_seconds: float = Field(1.0, gt=0, le=30)
    """How long a Redis command (held candidates, staged deletions) may take before it fails.

    Shorter than the gateway's memory timeout, so a wedged Redis is an error reply, not a wait."""

    # Storing a turn: attempts and back-off before it goes to the dead letters. The defaults
    # ride out about 25 minutes of Postgres outage; after that, replay_dead_letters.
    turn_max_deliveries: int = Field(50, ge=1)
    turn_retry_first_delay_seconds: float = Field(1.0, gt=0)
    turn_retry_max_delay_seconds: float = Field(30.0, gt=0)

    staged_deletion_ttl_seconds: int = Field(600, ge=10)
    """How long a staged deletion waits for the user's confirmation."""
    candidate_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    """How long a session's memory candidates wait to be committed by the finalizer."""
    housekeeping_interval_seconds: float = Field(60.0, gt=0)
    """How often turn text every reader acknowledged is purged from JetStream, and unfinished
    erasures are looked for."""
    erasure_unfinished_after_seconds: float = Field(120.0, gt=0)
    """How long an erasure may stay unfinished (its request still at work, or a retry on its
    way) before the housekeeping finishes it."""

    @property
    def turn_redelivery(self) -> Redelivery:
        """The retry policy of the turn consumers."""
        return Redelivery(
            max_deliver=self.turn_max_deliveries,
            first_delay=self.turn_retry_first_delay_seconds,
            max_delay=self.turn_retry_max_delay_seconds,
        )
