"""``--fail-on-skip``: scripts/compose-e2e's proof fails when a test of it could not run (no
Chromium, say), instead of passing with the browser test skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING = """
import pytest

def test_runs():
    pass

def test_cannot_run_here():
    pytest.skip("no Chromium-like-browser here")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False
"""

SKIPPED_MODULE = """
import pytest

pytest.skip("no playwright-like-module here", allow_module_level=True)

def test_never_collected():
    pass
"""


def run_pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(source)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "opencouch.testing.fixtures",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--rootdir",
            str(tmp_path),
            *options,
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (SKIPPING, "no Chromium-like-browser here"),
        (SKIPPED_MODULE, "no playwright-like-module here"),
    ],
)
def test_a_skip_fails_the_run_only_when_asked(tmp_path: Path, source: str, reason: str) -> None:
    lenient = run_pytest(tmp_path, source)
    # A module skipped whole leaves no test: pytest's "no tests collected", not a failure.
    passed = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert lenient.returncode in passed, lenient.stdout + lenient.stderr
    assert "skipped" in lenient.stdout

    strict = run_pytest(tmp_path, source, "--fail-on-skip")
    assert strict.returncode not in passed, strict.stdout + strict.stderr
    assert "skipped, which --fail-on-skip makes a failure" in strict.stdout
    assert reason in strict.stdout


def test_tests_that_run_and_expected_failures_still_pass_with_it(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, SKIPPING, "--fail-on-skip", "-k", "not cannot_run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "1 xfailed" in result.stdout
