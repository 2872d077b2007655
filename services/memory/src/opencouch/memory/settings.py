"""Settings for the memory service (env prefix ``MEMORY_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_DATABASE_URL, NatsServiceSettings


class MemorySettings(NatsServiceSettings):
    """Where the memory service connects and how much it takes on at once."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_")
    service_name: ClassVar[str] = "memory"

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(8, ge=1)
