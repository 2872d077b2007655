"""The installed packages agree with each other (``uv pip check``), OpenTelemetry above all.

The OpenTelemetry API, SDK, exporter and instrumentations are released in lockstep (SDK 1.x with
instrumentations 0.(x+21)bN); a lock that mixed releases would install, then fail at run time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest


def test_every_installed_package_has_what_it_requires() -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (scripts/test.sh installs it)")
    checked = subprocess.run(
        [uv, "pip", "check", "--python", sys.executable], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_opentelemetry_packages_are_one_release() -> None:
    sdk = version("opentelemetry-sdk")
    assert version("opentelemetry-api") == sdk
    assert version("opentelemetry-exporter-otlp-proto-http") == sdk
    minor = int(sdk.split(".")[1])
    for instrumentation in (
        "opentelemetry-instrumentation",
        "opentelemetry-instrumentation-psycopg",
        "opentelemetry-instrumentation-redis",
        "opentelemetry-semantic-conventions",
    ):
        assert version(instrumentation).startswith(f"0.{minor + 21}b"), instrumentation
