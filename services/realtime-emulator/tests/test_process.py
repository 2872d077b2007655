"""``python -m opencouch.realtime_emulator`` as a real process: settings from env, clean SIGTERM,
its startup heap frozen once it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from opencouch.realtime_emulator.__main__ import settings_from
from opencouch.realtime_emulator.settings import Settings
from opencouch.realtime_emulator.testing import (
    free_port,
)


def test_api_keys_accept_a_comma_separated_env() -> None:
    os.environ["REALTIME_EMULATOR_API_KEYS"] = "sk-a, sk-b"
    try:
        assert Settings().api_keys == ["sk-a", "sk-b"]
    finally:
        del os.environ["REALTIME_EMULATOR_API_KEYS"]


def test_module_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "REALTIME_EMULATOR_PORT": str(port), "REALTIME_EMULATOR_API_KEYS": "sk-x"}
    process = subprocess.Popen(
        [sys.executable, "-m", "opencouch.realtime_emulator"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "emulator did not come up"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        minted = httpx.post(
            f"http://127.0.0.1:{port}/v1/realtime/client_secrets",
            json={},
            headers={"Authorization": "Bearer sk-x"},
        )
        assert minted.status_code == 200
        secret = minted.json()["value"]
        inspected = httpx.get(f"http://127.0.0.1:{port}/_emulator/client_secrets/{secret}")
        assert inspected.status_code == 200
        # A client that gives up half way through its body (it timed out) is no error of ours.
        with socket.create_connection(("127.0.0.1", port)) as gone:
            gone.sendall(
                b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer sk-x\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        output = process.stdout.read().decode()
        assert "/_emulator/client_secrets/ek_***" in output
        # Privacy: secrets never reach the log.
        assert secret not in output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_options_win_over_the_environment(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: cli\n", encoding="utf-8")
    os.environ["REALTIME_EMULATOR_PORT"] = "9999"
    os.environ["REALTIME_EMULATOR_LOG_LEVEL"] = "debug"
    try:
        settings = settings_from(
            ["--port", "0", "--api-key", "sk-a", "--api-key", "sk-b", "--scenario", str(scenario)]
        )
    finally:
        del os.environ["REALTIME_EMULATOR_PORT"]
        del os.environ["REALTIME_EMULATOR_LOG_LEVEL"]
    assert (settings.port, settings.api_keys, settings.scenario) == (0, ["sk-a", "sk-b"], scenario)
    assert settings.log_level == "debug"


def test_the_served_process_freezes_the_heap_its_start_built() -> None:
    """Its full collections no longer walk the app and its audio stack while a call plays."""
    script = textwrap.dedent(
        """
        import asyncio, gc, os, signal, time
        from opencouch.realtime_emulator.__main__ import serve
        from opencouch.realtime_emulator.settings import Settings

        async def main() -> None:
            serving = asyncio.ensure_future(serve(Settings(port=int(os.environ["PORT"]))))
            deadline = time.monotonic() + 20
            while not gc.get_freeze_count() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            print(gc.get_freeze_count(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            await serving

        asyncio.run(main())
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(run.stdout.split()[0]) > 50_000, run.stdout
