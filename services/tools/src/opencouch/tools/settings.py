"""Settings for the tools service (env prefix ``TOOLS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_NATS_URL, infra_env

PREFIX = "TOOLS_"


class ToolsSettings(BaseSettings):
    """Where the tools service connects and how much it takes on at once."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=infra_env(PREFIX, "NATS_URL"))
    id_file: Path = Path("/tmp/opencouch/tools.id")
    max_concurrency: int = Field(64, ge=1)
    log_level: str = "INFO"
