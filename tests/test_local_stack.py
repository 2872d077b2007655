"""``make up-local`` runs the product without Docker; its /session config is valid per the spec."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from opencouch.testing.openai_spec import validate_against
from opencouch.testing.servers import repo_root

pytestmark = pytest.mark.e2e

PORTS = {"voice-gateway": 8000, "web": 8080, "realtime-emulator": 8090}


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_up_local_serves_sessions_whose_config_is_valid_per_the_official_schema(
    nats_url: str, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    busy = [name for name, port in PORTS.items() if _in_use(port)]
    if busy:
        pytest.skip(f"something already listens on the local stack's ports: {busy}")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **{
            f"{name}_ID_FILE": str(tmp_path / f"{name}.id")
            for name in ("TOOLS", "MEMORY", "FINALIZER")
        },
    }
    root = repo_root()
    up = subprocess.run(
        ["make", "up-local"], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        with httpx.Client(base_url="http://127.0.0.1:8000", timeout=30) as api:
            for mode in ("incognito", "persistent"):
                reply = api.post(
                    "/api/voice/realtime/session",
                    json={
                        "thread_id": f"local-stack-{mode}-{uuid.uuid4().hex[:8]}",
                        "memory_mode": mode,
                    },
                )
                assert reply.status_code == 200, reply.text
                body = reply.json()
                validate_against("RealtimeSessionCreateRequestGA", body["session"])
                tools = body["session"]["tools"]
                assert tools
                assert all(tool["parameters"]["additionalProperties"] is False for tool in tools)
                assert body["realtime_calls_url"] == "http://127.0.0.1:8090/v1/realtime/calls"
        page = httpx.get("http://127.0.0.1:8080/voice")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        down = subprocess.run(
            ["make", "down-local"], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [name for name, port in PORTS.items() if _in_use(port)]
