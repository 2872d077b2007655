"""A service still waiting for NATS at start stops at once on SIGTERM, and exits 0.

It used to wait for NATS forever and ignore the signal: the graceful stop only began once the
service served, so `docker compose down` or a rollout during an outage waited for the kill
timeout, and the service died by SIGKILL.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opencouch.testing.processes import start_service
from opencouch.testing.servers import free_port

# Docker's default stop timeout: past it the service would have been killed.
KILL_TIMEOUT_SECONDS = 10


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("tools", {}),
        ("memory", {}),
        ("finalizer", {"FINALIZER_SUMMARISER": "extractive"}),
        ("voice-gateway", {"OPENAI_API_KEY": ""}),
    ],
)
def test_a_service_waiting_for_nats_stops_cleanly_on_sigterm(
    name: str, env: dict[str, str], redis_url: str, database_url: str, tmp_path: Path
) -> None:
    prefix = name.upper().replace("-", "_")
    service = start_service(
        name,
        f"opencouch.{name.replace('-', '_')}",
        {
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",  # nothing listens there
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            f"{prefix}_METRICS_PORT": str(free_port()),
            f"{prefix}_PORT": str(free_port()),
            **env,
        },
        tmp_path,
        lambda: False,
    )
    deadline = time.monotonic() + 60
    while "nats unreachable" not in service.log_tail():  # retrying its connection to NATS
        assert service.process.poll() is None, service.log_tail()
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.1)
    code = service.stop(timeout=KILL_TIMEOUT_SECONDS)
    assert code == 0, service.log_tail()
    assert "stopped while starting" in service.log_tail()
    assert "Traceback" not in service.log_path.read_text()
