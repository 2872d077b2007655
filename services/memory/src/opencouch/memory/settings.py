"""Settings for the memory service (env prefix ``MEMORY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, infra_env

PREFIX = "MEMORY_"


class MemorySettings(BaseSettings):
    """Where the memory service connects and how much it takes on at once."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=infra_env(PREFIX, "NATS_URL"))
    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=infra_env(PREFIX, "DATABASE_URL")
    )
    id_file: Path = Path("/tmp/opencouch/memory.id")
    max_concurrency: int = Field(64, ge=1)
    db_pool_size: int = Field(8, ge=1)
    log_level: str = "INFO"
