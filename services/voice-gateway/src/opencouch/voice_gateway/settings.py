"""Settings for the voice gateway (env prefix ``VOICE_GATEWAY_``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_NATS_URL, DEFAULT_REDIS_URL, infra_env

PREFIX = "VOICE_GATEWAY_"
OPENAI_BASE_URL = "https://api.openai.com/v1"
EMULATOR_BASE_URL = "http://127.0.0.1:8090/v1"


class GatewaySettings(BaseSettings):
    """Where the gateway listens and connects, and the Realtime session it configures.

    With no ``OPENAI_API_KEY`` every Realtime call goes to the offline emulator.
    """

    # An empty variable (``OPENAI_API_KEY=`` in a .env) means unset, not an empty key.
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", env_ignore_empty=True)

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=infra_env(PREFIX, "NATS_URL"))
    redis_url: str = Field(DEFAULT_REDIS_URL, validation_alias=infra_env(PREFIX, "REDIS_URL"))
    cors_origins: Annotated[list[str], NoDecode] = [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    ]

    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices(f"{PREFIX}OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = OPENAI_BASE_URL
    """Realtime API base used when a key is set."""
    public_realtime_url: str | None = None
    """Realtime API base as the browser reaches it, when a key is set; default ``openai_base_url``."""
    emulator_base_url: str = EMULATOR_BASE_URL
    """The emulator's API base, used when no key is set (the key never goes there)."""
    emulator_public_url: str | None = None
    """The emulator as the browser reaches it; default ``emulator_base_url``."""
    emulator_api_key: SecretStr = SecretStr("sk-emulator-local")
    realtime_model: str = "gpt-realtime"
    transcription_model: str = "gpt-4o-mini-transcribe"
    client_secret_ttl_seconds: int = Field(60, ge=10, le=7200)

    session_ttl_seconds: int = Field(24 * 3600, ge=60)
    memory_timeout_seconds: float = Field(3.0, gt=0)
    tool_timeout_seconds: float = Field(8.0, gt=0)
    finalizer_timeout_seconds: float = Field(2.0, gt=0)
    end_wait_seconds: float = Field(5.0, ge=0)
    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("cors_origins"), str):
            data["cors_origins"] = [o.strip() for o in data["cors_origins"].split(",") if o.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_emulator_in_production(self) -> GatewaySettings:
        if self.environment == "production" and self.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required when VOICE_GATEWAY_ENVIRONMENT=production")
        return self

    @property
    def uses_emulator(self) -> bool:
        """True when no OpenAI key is configured."""
        return self.openai_api_key is None

    @property
    def realtime_api_key(self) -> str:
        """The key the gateway mints client secrets with; never sent to a browser."""
        key = self.openai_api_key or self.emulator_api_key
        return key.get_secret_value()

    @property
    def realtime_base_url(self) -> str:
        """Where the gateway calls the Realtime API: OpenAI with a key, else the emulator."""
        base = self.emulator_base_url if self.uses_emulator else self.openai_base_url
        return base.rstrip("/")

    @property
    def realtime_calls_url(self) -> str:
        """Where the browser posts its SDP offer."""
        public = self.emulator_public_url if self.uses_emulator else self.public_realtime_url
        return f"{(public or self.realtime_base_url).rstrip('/')}/realtime/calls"
