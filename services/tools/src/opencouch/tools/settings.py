"""Settings for the tools service (env prefix ``TOOLS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opencouch.runtime.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    NatsServiceSettings,
)

CRISIS_LOG_MIN_RETENTION_DAYS = 90


class ToolsSettings(NatsServiceSettings):
    """Where the tools service connects, what content it serves, and how long it keeps state."""

    model_config = SettingsConfigDict(env_prefix="TOOLS_")
    service_name: ClassVar[str] = "tools"

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    db_pool_size: int = Field(8, ge=1)
    db_timeout_seconds: float = Field(1.0, gt=0, le=30)
    """How long a tool waits for a Postgres connection before it reports the store down.

    Shorter than the gateway's tool timeout, so the model hears ``search_unavailable`` rather
    than a timeout."""
    redis_timeout_seconds: float = Field(1.0, gt=0, le=30)
    """How long a Redis command (a session's tool state) may take before it fails: shorter than
    the gateway's tool timeout, as with Postgres."""
    session_state_ttl_seconds: int = Field(24 * 3600, ge=60)
    """The longest a voice session's tool state (crisis lookup, exercise) lives in Redis. It goes
    sooner: when the session closes, or when the gateway says it can no longer call tools."""
    content_dir: Path | None = None
    """A directory with ``skills/`` and ``exercises/`` to serve instead of the packaged ones."""
    crisis_log_retention_days: int = Field(
        CRISIS_LOG_MIN_RETENTION_DAYS, ge=CRISIS_LOG_MIN_RETENTION_DAYS
    )
    retention_interval_seconds: float = Field(3600.0, gt=0)
    """How often the crisis-log retention job runs."""
