"""Headless Chromium for the tests of the /ui page (playwright driving /usr/bin/chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the test without Chromium; fail instead in CI, where it must be installed."""
    if not Path(CHROMIUM).exists():
        message = (
            f"BROWSER TEST SKIPPED: {CHROMIUM} is missing. Install it (Debian/Ubuntu: sudo "
            "apt-get install chromium) or run `make test PHISHGUARD_INSTALL_SYSTEM_PACKAGES=1`"
        )
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (playwright's `Browser`), closed on exit."""
    require_chromium()
    # playwright starts a driver process: imported only by the tests that drive a browser.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
