"""A real headless Chromium for page tests (selenium + Debian's ``chromium`` and
``chromium-driver``).

Where no browser is installed the test is skipped with the line that installs one; under CI
(``CI=true``) a missing browser fails the test instead, so a green CI always means the pages
were tried in a browser. ``.ci/run`` installs both packages when it runs as root.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

INSTALL = "apt-get install -y chromium chromium-driver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
)  # fmt: skip


def _missing(reason: str) -> None:
    message = f"{reason}: install a headless browser with `{INSTALL}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests; {message}")
    pytest.skip(message)


@contextmanager
def chromium(basic_auth: tuple[str, str] | None = None) -> Iterator[Any]:
    """A headless Chromium session with a fresh profile; ``basic_auth`` goes with every request."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (it is in the dev extra)")
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("no chromium" if binary is None else "no chromedriver")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager phones home otherwise
    with tempfile.TemporaryDirectory(prefix="etl-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            driver.set_page_load_timeout(30)
            if basic_auth is not None:
                token = base64.b64encode(":".join(basic_auth).encode()).decode()
                driver.execute_cdp_cmd("Network.enable", {})
                driver.execute_cdp_cmd(
                    "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
                )
            yield driver
        finally:
            driver.quit()
