"""Real Chromium for tests: the system binary driven by Playwright, never a downloaded one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


def launched_chromium() -> Iterator[Any]:
    """A Playwright browser on the system Chromium; skips the test with the reason if absent."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium: install it (apt-get install chromium) or set CHROMIUM_PATH")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
