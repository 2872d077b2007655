"""Real Chromium for tests: the system binary driven by Playwright, never a downloaded one."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# No sandbox as root; no background traffic, which a closed network refuses noisily; fake
# microphone and permission prompt so WebRTC pages run unattended.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def chromium_executable() -> str | None:
    """``$CHROMIUM_PATH``, else the first Chromium-like browser on PATH."""
    candidates = [os.environ.get("CHROMIUM_PATH")] + [
        shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
    ]
    return next((path for path in candidates if path), None)


def running_playwright() -> Iterator[Any]:
    """Playwright's sync API, once per thread; skips the test with the reason if it is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        yield playwright


def launch_chromium(
    playwright: Any, extra_flags: Sequence[str] = (), *, without: Sequence[str] = ()
) -> Any:
    """The system Chromium, launched by ``playwright``; skips the test with the reason if absent.

    ``extra_flags`` are added to ``CHROMIUM_FLAGS`` (e.g. a WAV as the fake microphone:
    ``--use-file-for-fake-audio-capture=<wav>%noloop``); ``without`` removes some of them (e.g.
    ``--use-fake-ui-for-media-stream``, to see a page handle a refused microphone).
    """
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium: install it (apt-get install chromium) or set CHROMIUM_PATH")
    flags = [flag for flag in CHROMIUM_FLAGS if flag not in without] + list(extra_flags)
    return playwright.chromium.launch(executable_path=executable, args=flags)


def launched_chromium(
    extra_flags: Sequence[str] = (), *, without: Sequence[str] = ()
) -> Iterator[Any]:
    """A Playwright browser on the system Chromium, closed afterwards (see ``launch_chromium``)."""
    for playwright in running_playwright():
        browser = launch_chromium(playwright, extra_flags, without=without)
        try:
            yield browser
        finally:
            browser.close()


def fake_microphone(wav: Path) -> list[str]:
    """Chromium flags making ``wav`` its microphone: played once from when a page opens it."""
    return [f"--use-file-for-fake-audio-capture={wav}%noloop"]


def speech_tools_missing() -> str | None:
    """Why spoken test audio cannot be made here (espeak-ng or sox missing), or None."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    return f"needs {' and '.join(missing)} (apt-get install espeak-ng sox)" if missing else None


def spoken_wav(path: Path, *parts: str | float) -> Path:
    """A 48 kHz mono WAV at ``path``: each text part said by espeak-ng, each number that many
    seconds of silence (lead with a few seconds, so the call is up before anyone speaks)."""
    pieces = []
    for index, part in enumerate(parts):
        piece = path.with_name(f"{path.stem}-{index}.wav")
        if isinstance(part, str):
            said = subprocess.run(["espeak-ng", "--stdout", part], check=True, capture_output=True)
            _sox(["-t", "wav", "-"], piece, input_bytes=said.stdout)
        else:
            _sox(["-n"], piece, "trim", "0", str(part))
        pieces.append(piece)
    subprocess.run(["sox", *map(str, pieces), str(path)], check=True, capture_output=True)
    for piece in pieces:
        piece.unlink()
    return path


def _sox(source: list[str], target: Path, *effects: str, input_bytes: bytes = b"") -> None:
    subprocess.run(
        ["sox", *source, "-r", "48000", "-c", "1", "-b", "16", str(target), *effects],
        input=input_bytes,
        check=True,
        capture_output=True,
    )


UNCAUGHT = "uncaught: "
"""How ``watch_console`` marks an error the page's code threw and nothing caught."""


def watch_console(page: Any, problems: list[str]) -> Any:
    """Collect ``page``'s console errors and warnings (CSP violations too) and uncaught errors
    (marked ``UNCAUGHT``, with their stack)."""
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda error: problems.append(f"{UNCAUGHT}{error.stack or error}"))
    return page


def uncaught_errors(problems: list[str]) -> list[str]:
    """The errors among ``problems`` that the page's code threw and nothing caught.

    A console error may be expected (a refused request logs one); an uncaught error never is:
    it is a bug of the page's, whatever the test was looking at.
    """
    return [problem for problem in problems if problem.startswith(UNCAUGHT)]
