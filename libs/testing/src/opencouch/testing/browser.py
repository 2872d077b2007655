"""Real Chromium for tests: the system binary driven by Playwright, never a downloaded one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
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
