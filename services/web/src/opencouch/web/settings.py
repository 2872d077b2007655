"""Web settings, read from ``WEB_*`` environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencouch.runtime.settings import DEFAULT_METRICS_PORTS


def origin_of(url: str) -> str:
    """The ``scheme://host[:port]`` of an http(s) URL; raises ``ValueError`` for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class Settings(BaseSettings):
    """Where the web client listens and which origins its pages may talk to."""

    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # /metrics, on a port of its own as every service serves it (``DEFAULT_METRICS_PORTS``).
    metrics_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("WEB_METRICS_HOST", "METRICS_HOST")
    )
    metrics_port: int = Field(default=DEFAULT_METRICS_PORTS["web"], ge=0, le=65535)
    # Browser-facing base of the voice gateway; the page calls it cross-origin.
    api_base_url: str = "http://127.0.0.1:8000"
    # Where the browser sends its SDP offer: the emulator locally, https://api.openai.com live.
    # A full URL is accepted and reduced to its origin, since CSP connect-src is per origin.
    realtime_origin: str = "http://127.0.0.1:8090"
    log_level: str = "INFO"
    # Where to send traces (OTLP over HTTP), as every service reads it; unset: tracing is off.
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WEB_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )

    @field_validator("api_base_url")
    @classmethod
    def _check_api_base_url(cls, value: str) -> str:
        """Keep the base without a trailing slash so the page can append ``/api/...``."""
        origin_of(value)
        return value.strip().rstrip("/")

    @field_validator("realtime_origin")
    @classmethod
    def _reduce_to_origin(cls, value: str) -> str:
        return origin_of(value)

    @property
    def api_origin(self) -> str:
        """The gateway's origin, for CSP ``connect-src``."""
        return origin_of(self.api_base_url)
