"""``python -m opencouch.web`` as a real process: it serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from opencouch.testing.servers import free_port


def test_serves_until_sigterm() -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "WEB_METRICS_PORT": str(metrics_port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "opencouch.web"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
        assert response is not None, "web did not start listening"
        assert response.status_code == 200
        assert "content-security-policy" in response.headers
        # Metrics on a port of their own, as every service serves them; not on the public one.
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert "opencouch_http_request_duration_seconds" in scraped.text
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert b"Finished server process" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
