"""Headless Chromium for the dashboard test: Debian's chromium and chromium-driver,
installed with apt-get when missing (`python -m spice.devstack.browser`)."""
from __future__ import annotations

import shutil
import sys

from spice.devstack.base import apt_install, say

CHROMIUM = ("chromium", "chromedriver")


def ensure_browser() -> tuple[str, str]:
    if not all(shutil.which(b) for b in CHROMIUM):
        apt_install("chromium", "chromium-driver")
    found = tuple(shutil.which(b) for b in CHROMIUM)
    if not all(found):
        raise RuntimeError("chromium and chromedriver are still missing after apt-get")
    return found  # type: ignore[return-value]


if __name__ == "__main__":
    try:
        browser, driver = ensure_browser()
    except Exception as error:  # noqa: BLE001 - report and fail the test command
        say(f"browser: {error}")
        sys.exit(1)
    say(f"browser: {browser}, driver: {driver}")
