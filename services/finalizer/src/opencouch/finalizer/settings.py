"""Settings for the finalizer (env prefix ``FINALIZER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, infra_env

PREFIX = "FINALIZER_"


class FinalizerSettings(BaseSettings):
    """Where the finalizer connects and how patiently it waits for memory."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=infra_env(PREFIX, "NATS_URL"))
    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=infra_env(PREFIX, "DATABASE_URL")
    )
    id_file: Path = Path("/tmp/opencouch/finalizer.id")
    memory_timeout_seconds: float = Field(5.0, gt=0)
    # Memory stores turns asynchronously; how often and how long to wait for the last ones.
    turn_wait_retry_seconds: float = Field(0.5, gt=0)
    max_deliveries: int = Field(60, ge=1)
    max_concurrency: int = Field(64, ge=1)
    log_level: str = "INFO"
