"""pytest fixtures for real servers; the repo's root conftest loads this plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opencouch.testing.servers import (
    ServerUnavailableError,
    nats_server,
    postgres_database,
    redis_server,
)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """NATS with JetStream for this test session."""
    try:
        with nats_server() as url:
            yield url
    except ServerUnavailableError as error:
        pytest.skip(f"NATS unavailable: {error}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis for this test session."""
    try:
        with redis_server() as url:
            yield url
    except ServerUnavailableError as error:
        pytest.skip(f"Redis unavailable: {error}")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh Postgres database for this test session, dropped at the end."""
    try:
        with postgres_database() as url:
            yield url
    except ServerUnavailableError as error:
        pytest.skip(f"Postgres unavailable: {error}")
