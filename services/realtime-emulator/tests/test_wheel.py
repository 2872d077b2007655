"""The emulator as an outsider gets it: its wheel, alone in a fresh virtual environment.

Builds the wheel, installs only it (its dependencies come from PyPI) into a new venv, and
there runs ``outsider/use_the_emulator.py`` (console script, an SDK call, a WebSocket session
with a tool of the script's own) and ``outsider/test_with_the_plugin.py`` under pytest. Every
download is cached inside the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OUTSIDER = Path(__file__).parent / "outsider"


def pypi_unreachable() -> str | None:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as error:
        return f"PyPI is not reachable ({error}); the wheel's dependencies come from there"
    return None


def run(command: list[str | Path], *, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output[-4000:]}"
    return output


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build the wheel")
def test_the_wheel_alone_serves_the_sdk_and_the_plugin(tmp_path: Path) -> None:
    unreachable = pypi_unreachable()
    if unreachable:
        pytest.skip(unreachable)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTHON", "PYTEST", "UV_", "REALTIME_EMULATOR_"))
    }
    env |= {"UV_CACHE_DIR": str(tmp_path / "cache"), "UV_PYTHON_DOWNLOADS": "never"}
    dist, venv = tmp_path / "dist", tmp_path / "venv"

    run(
        ["uv", "build", "--package", "opencouch-realtime-emulator", "--wheel", "-o", dist],
        env=env,
        cwd=ROOT,
    )
    (wheel,) = dist.glob("opencouch_realtime_emulator-*.whl")
    run(["uv", "venv", venv, "--python", sys.executable], env=env, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(["uv", "pip", "install", "--python", python, f"{wheel}[pytest]"], env=env, cwd=tmp_path)

    work = tmp_path / "outsider"
    shutil.copytree(OUTSIDER, work)
    try:
        assert "outsider: ok" in run([python, work / "use_the_emulator.py"], env=env, cwd=work)
        plugin_run = run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_with_the_plugin.py"],
            env=env,
            cwd=work,
        )
        assert "1 passed" in plugin_run
    finally:
        # A few hundred megabytes of downloads: not worth keeping among pytest's old tmp dirs.
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        shutil.rmtree(venv, ignore_errors=True)
