"""Each service runs with only its own locked dependencies, as its image installs them.

The workspace's virtualenv holds every package, so an import a service forgot to declare works
in every other test and fails only in its container. Here each service gets a virtualenv of its
own (``uv sync --package``, what the Dockerfile runs) and must import every module it ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from opencouch.testing.servers import repo_root

SERVICES = {
    "voice-gateway": "voice_gateway",
    "tools": "tools",
    "memory": "memory",
    "finalizer": "finalizer",
    "web": "web",
    "realtime-emulator": "realtime_emulator",
}

# Test support (testing modules, the pytest plugin) ships beside the code but runs under
# pytest, which no image installs.
IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if ".testing" in module.name or module.name.endswith("pytest_plugin"):
        continue
    importlib.import_module(module.name)
print("imported", package.__name__)
"""


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_every_module_with_only_its_own_dependencies(
    service: str, tmp_path: Path
) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    venv = tmp_path / "venv"
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--package", f"opencouch-{service}", "--quiet"],
        cwd=repo_root(),
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", IMPORT_ALL, f"opencouch.{SERVICES[service]}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
