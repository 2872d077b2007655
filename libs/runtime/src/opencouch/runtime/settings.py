"""Settings helpers: every service has its own env prefix, and shares the infrastructure URLs."""

from __future__ import annotations

from pydantic import AliasChoices


def infra_env(prefix: str, name: str) -> AliasChoices:
    """Read ``<PREFIX><NAME>`` first, then the shared ``<NAME>`` (e.g. ``NATS_URL``).

    One ``NATS_URL`` configures a whole stack; a per-service variable still wins.
    """
    return AliasChoices(f"{prefix}{name}", name)


DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
