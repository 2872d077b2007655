"""Settings every service shares: one env prefix per service, plus the shared infrastructure URLs.

``NATS_URL``, ``REDIS_URL``, ``DATABASE_URL``, ``LOG_LEVEL``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``METRICS_HOST`` configure a whole stack at once; a prefixed variable (``MEMORY_DATABASE_URL``)
still wins for one service.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from opencouch.runtime.errors import describe_validation

DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"

DEFAULT_METRICS_PORTS: Final = {
    "voice-gateway": 9470,
    "tools": 9471,
    "memory": 9472,
    "finalizer": 9473,
    "web": 9474,
}
"""Each service's own ``/metrics`` port, distinct so a whole stack can share one host. Never an
HTTP service's public port: what the product counts (crisis screens, sessions, failures) is for
the operator's Prometheus, not for anyone who can reach the API."""

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")

SHARED_INFRA_VARIABLES: Final = {
    "nats_url": "NATS_URL",
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "log_level": "LOG_LEVEL",
    "otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "metrics_host": "METRICS_HOST",
}
"""Fields any service may have, and the unprefixed variable that sets them for every service."""


class _SharedInfraSource(PydanticBaseSettingsSource):
    """Reads the unprefixed infrastructure variables for the fields a service declares."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = SHARED_INFRA_VARIABLES.get(field_name)
        value = os.environ.get(variable) if variable else None
        return value or None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class ServiceSettings(BaseSettings):
    """Base of every service's settings; a subclass sets ``env_prefix`` and adds its own fields.

    Sources, strongest first: constructor arguments, ``<PREFIX><NAME>`` variables, the shared
    ``NATS_URL``/``REDIS_URL``/``DATABASE_URL``, then defaults. An empty variable means unset.
    """

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    service_name: ClassVar[str]
    """The short name: log tag, default id-file name, default metrics port."""

    nats_url: str = DEFAULT_NATS_URL
    log_level: str = "INFO"
    otlp_endpoint: str | None = None
    """Where to send traces (OTLP over HTTP, e.g. ``http://otel-collector:4318``); unset means
    tracing is off. Sampling follows the standard ``OTEL_TRACES_SAMPLER`` variables."""
    metrics_host: str = "127.0.0.1"
    """Where ``/metrics`` listens; ``0.0.0.0`` in a container that Prometheus scrapes."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Where ``/metrics`` listens; default from ``DEFAULT_METRICS_PORTS``, ``0`` any free port."""

    @property
    def serving_metrics_port(self) -> int:
        """``metrics_port``, by default this service's entry in ``DEFAULT_METRICS_PORTS``."""
        if self.metrics_port is not None:
            return self.metrics_port
        return DEFAULT_METRICS_PORTS.get(self.service_name, 0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SharedInfraSource(settings_cls), file_secret_settings)


class NatsServiceSettings(ServiceSettings):
    """Settings of a service that serves NATS requests and consumes JetStream (no HTTP API)."""

    id_file: Path | None = None
    """Where this instance writes its nats.micro id for the health check."""
    max_concurrency: int = Field(64, ge=1)

    @property
    def health_id_file(self) -> Path:
        """``id_file``, by default ``/tmp/opencouch/<service>.id``."""
        return self.id_file or Path(f"/tmp/opencouch/{self.service_name}.id")


def load_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """The service's settings from the environment, or exit with what is wrong.

    pydantic's own message quotes the input, which may be a key; this one names only the
    setting and the problem, so a misconfigured start never prints a secret.
    """
    try:
        return settings_cls()
    except ValidationError as error:
        sys.exit(
            f"{settings_cls.__name__}: invalid settings: {describe_validation(error, root='settings')}"
        )
