"""Emulator settings, read from ``REALTIME_EMULATOR_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """How the emulator listens, whom it lets in and how its model behaves."""

    model_config = SettingsConfigDict(env_prefix="REALTIME_EMULATOR_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # Standard API keys (sk-...) the emulator accepts; ephemeral ek_ keys are minted on demand.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["sk-emulator-local"])
    # A YAML or JSON scenario file; without one the generic brain answers from the tools offered.
    scenario: Path | None = None
    default_model: str = "gpt-realtime"
    default_voice: str = "alloy"
    # OpenAI ends a session after 60 minutes; a scenario or header may shorten this per call.
    max_session_seconds: float = Field(default=3600.0, gt=0)
    # "auto" speaks with espeak-ng when it is installed and falls back to a tone.
    speech: Literal["auto", "espeak", "tone"] = "auto"
    # Words per minute for synthesised speech and for the tone fallback's length.
    speech_words_per_minute: int = Field(default=175, ge=80, le=450)
    log_level: str = "info"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: object) -> object:
        """Accept ``sk-a,sk-b`` as well as a JSON list from the environment."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [key.strip() for key in text.split(",") if key.strip()]
        return value
