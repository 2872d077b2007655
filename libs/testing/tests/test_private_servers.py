"""A test run's Redis is its own: nothing an earlier run left there reaches it.

The gateway's sweep set (``ocv:unended``) and its rate counters are deployment-wide keys. On the
machine's shared Redis, sessions an earlier run left open fell due in a later run's sweep and
were ended by it (CI of stop 28: a sweep ended 5 sessions where its test made 1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from opencouch.testing.infra import PrivateNats
from opencouch.testing.servers import redis_server


def test_without_redis_url_a_run_gets_an_empty_redis_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary: the run uses the environment's Redis")
    monkeypatch.delenv("REDIS_URL", raising=False)
    urls = []
    for _ in range(2):
        with redis_server() as url:
            urls.append(url)
            client = redis.Redis.from_url(url)
            try:
                assert client.dbsize() == 0  # nothing from the run before
                client.zadd("ocv:unended", {"vs:left-open": 1.0})
            finally:
                client.close()
        with pytest.raises(redis.ConnectionError):  # stopped with its run
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    assert all(not url.startswith("redis://127.0.0.1:6379/") for url in urls)


def test_a_redis_url_that_answers_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with redis_server() as private:
        monkeypatch.setenv("REDIS_URL", private)
        with redis_server() as url:
            assert url == private


def test_a_private_server_names_its_process_while_it_runs(tmp_path: Path) -> None:
    """The benchmarks read a server's CPU from /proc by this id: it must be the server's own.
    nats-server comes with the locked dev dependencies, so every run has one."""
    server = PrivateNats(tmp_path)
    assert server.pid is None  # not started
    server.start()
    try:
        pid = server.pid
        assert pid is not None
        assert b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        server.kill()
    assert server.pid is None  # gone
