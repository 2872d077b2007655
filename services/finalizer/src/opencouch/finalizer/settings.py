"""Settings for the finalizer (env prefix ``FINALIZER_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_DATABASE_URL, NatsServiceSettings


class FinalizerSettings(NatsServiceSettings):
    """Where the finalizer connects and how patiently it waits for memory."""

    model_config = SettingsConfigDict(env_prefix="FINALIZER_")
    service_name: ClassVar[str] = "finalizer"

    database_url: str = DEFAULT_DATABASE_URL
    memory_timeout_seconds: float = Field(5.0, gt=0)
    # Memory stores turns asynchronously; how often and how long to wait for the last ones.
    turn_wait_retry_seconds: float = Field(0.5, gt=0)
    max_deliveries: int = Field(60, ge=1)
