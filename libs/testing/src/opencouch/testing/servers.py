"""Real NATS, Redis and Postgres for tests.

Each comes from the environment (``NATS_URL``, ``REDIS_URL``, ``DATABASE_URL``) when set and
reachable; else NATS and Redis are started from the ``nats-server`` and ``redis-server``
binaries on free ports, private to the run: no other stack competes for its consumers, and
nothing an earlier run left in Redis (a session falling due in the deployment-wide sweep set,
a rate counter) reaches this one. Postgres gets a fresh database on the server. Else a
testcontainers container; else the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import uvicorn
from ephemeral_port_reserve import reserve


class ServerUnavailableError(RuntimeError):
    """No way to get this server here; the message says what was tried."""


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A TCP port for a server this run starts, never one this process was given before.

    The port is held in TIME_WAIT (``ephemeral_port_reserve``) for a minute: the kernel gives
    it to no other socket that asks for any free port (a test's own receiver on port 0 once got
    the port a service was told to serve its metrics on, and the scrape reached the receiver),
    while a server that binds it by number with ``SO_REUSEADDR`` (uvicorn, prometheus_client,
    nats-server, redis-server) takes it at once. Two calls in a row once returned the same port,
    and a stack started its emulator and its web app on it: no port is handed out twice.
    """
    while True:
        port: int = reserve("127.0.0.1")
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers: a wedged server."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield silent.getsockname()[1]


@contextlib.contextmanager
def served_in_thread(config: uvicorn.Config, timeout: float = 20.0) -> Iterator[str]:
    """Serve with uvicorn on a thread of its own (and its own loop); yield the base URL, and
    stop it on exit."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout):
            return True
    except OSError:
        return False


def wait_reachable(url: str, timeout: float = 20.0) -> None:
    """Block until ``url`` accepts connections, or raise."""
    deadline = time.monotonic() + timeout
    while not reachable(url):
        if time.monotonic() > deadline:
            raise ServerUnavailableError(f"{url} did not come up in {timeout:g}s")
        time.sleep(0.05)


def _from_env(name: str) -> str | None:
    url = os.environ.get(name)
    if url and reachable(url):
        return url
    return None


@contextlib.contextmanager
def _container(kind: str) -> Iterator[str]:
    try:
        if kind == "redis":
            from testcontainers.redis import RedisContainer

            with RedisContainer("redis:7") as redis:
                yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        elif kind == "postgres":
            from testcontainers.postgres import PostgresContainer

            with PostgresContainer("postgres:16", driver=None) as postgres:
                yield postgres.get_connection_url()
        else:
            from testcontainers.nats import NatsContainer

            with NatsContainer("nats:2.10") as nats:
                yield nats.nats_uri()
    except Exception as error:  # no Docker, no registry, no image: all mean "not here"
        raise ServerUnavailableError(f"{kind}: no URL in the environment and {error}") from None


@contextlib.contextmanager
def nats_server(*, private: bool = False) -> Iterator[str]:
    """A NATS URL with JetStream: the environment's, a private nats-server, or a container.

    ``private`` skips the environment's: for tests whose services must not meet any other's.
    """
    url = None if private else _from_env("NATS_URL")
    if url:
        yield url
        return
    if shutil.which("nats-server"):
        with _private("nats") as url:
            yield url
        return
    with _container("nats") as url:
        yield url


@contextlib.contextmanager
def _private(kind: str) -> Iterator[str]:
    """A ``PrivateNats`` or ``PrivateRedis`` in a folder of its own, stopped and removed after."""
    from opencouch.testing.infra import PrivateNats, PrivateRedis  # infra builds on this module

    server_class = {"nats": PrivateNats, "redis": PrivateRedis}[kind]
    with tempfile.TemporaryDirectory(prefix=f"opencouch-{kind}-") as store:
        server = server_class(Path(store))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: the environment's, a private redis-server, or a container's."""
    url = _from_env("REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server"):
        with _private("redis") as url:
            yield url
        return
    with _container("redis") as url:
        yield url


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the environment's (or a container's) Postgres, dropped after."""
    import psycopg
    from psycopg import sql

    server = _from_env("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(_container("postgres"))
        name = f"opencouch_test_{secrets.token_hex(6)}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        parts = urlsplit(server)
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def repo_root() -> Path:
    """The workspace root (the folder holding ``uv.lock``)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "uv.lock").is_file():
            return parent
    raise RuntimeError("not inside the OpenCouch Voice workspace")
