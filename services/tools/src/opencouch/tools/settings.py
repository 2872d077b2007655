"""Settings for the tools service (env prefix ``TOOLS_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from opencouch.runtime.settings import NatsServiceSettings


class ToolsSettings(NatsServiceSettings):
    """Where the tools service connects and how much it takes on at once."""

    model_config = SettingsConfigDict(env_prefix="TOOLS_")
    service_name: ClassVar[str] = "tools"
