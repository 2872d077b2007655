"""pytest fixtures for real servers; the repo's root conftest loads this plugin."""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opencouch.runtime.tracing import disable_tracing, enable_tracing
from opencouch.testing.compose import composed_stack
from opencouch.testing.infra import PrivateNats, PrivateRedis
from opencouch.testing.processes import Stack, running_stack
from opencouch.testing.servers import (
    ServerUnavailableError,
    nats_server,
    postgres_database,
    redis_server,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        help="a skipped test fails the run: a proof (scripts/compose-e2e) that skips proves nothing",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With ``--fail-on-skip``, a skipped test is reported failed, with the skip's reason."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and item.config.getoption("fail_on_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, which --fail-on-skip makes a failure: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """With ``--fail-on-skip``, a module skipped whole (``allow_module_level``) fails too."""
    report = yield
    if report.skipped and collector.config.getoption("fail_on_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, which --fail-on-skip makes a failure: {reason}"
    return report


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


@pytest.fixture
def restartable_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNats]:
    """A private nats-server with JetStream, not started yet, that the test may stop and start
    again; stopped at the end. Skipped without a ``nats-server`` binary (the locked dev
    dependencies bring one, so ``make test`` always has it)."""
    if shutil.which("nats-server") is None:
        pytest.skip("no nats-server binary to restart")
    server = PrivateNats(tmp_path_factory.mktemp("nats-restart"))
    yield server
    server.stop()


@pytest.fixture
def restartable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A private redis-server with an append-only file, not started yet, that the test may
    stop and start again; stopped at the end. Skipped without a ``redis-server`` binary (every
    machine ``make test`` runs on has one: it is how the run gets its private Redis)."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary to restart")
    server = PrivateRedis(tmp_path_factory.mktemp("redis-restart"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole product, for end-to-end tests.

    The composed stack ``scripts/compose-e2e`` names in ``OPENCOUCH_E2E_*`` (that script checks
    the clean stop itself, at its end); else every service as a local process on this session's
    NATS, Redis and Postgres, each of which must stop cleanly on SIGTERM.
    """
    composed = composed_stack()
    if composed is not None:
        yield composed
        return
    log_dir: Path = tmp_path_factory.mktemp("stack-logs")
    with running_stack(
        nats_url=request.getfixturevalue("nats_url"),
        redis_url=request.getfixturevalue("redis_url"),
        database_url=request.getfixturevalue("database_url"),
        log_dir=log_dir,
    ) as running:
        yield running
    unclean = {name: code for name, code in running.exit_codes.items() if code != 0}
    assert not unclean, f"services did not stop cleanly on SIGTERM: {unclean}"


@pytest.fixture
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process for one test (Redis and SQL included); its spans, in memory.

    Tracing is off in every other test. Connections and apps that should be traced must be
    made inside the test, after this fixture turned tracing on.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "opencouch-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(provider)
    try:
        yield exporter
    finally:
        disable_tracing()
        provider.shutdown()
