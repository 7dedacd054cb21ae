"""A real browser for the dashboard's e2e test: Debian's chromium, headless, driven through
Debian's chromedriver by selenium. Both paths are given, so selenium never looks for (or
downloads) a browser or a driver of its own, and the flags keep chromium off the network
except for the page under test. Screenshots go to ``.artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
]


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless chromium with a fresh profile (``profile``), closed afterwards."""
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager, if ever asked, stays offline
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_window_size(1280, 800)
        yield driver
    finally:
        driver.quit()


def until(driver: webdriver.Chrome, what: str, check: Any, timeout: float = 30) -> Any:
    """Wait (without reloading anything) until ``check(driver)`` is truthy; its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check, message=what)


def one(driver: webdriver.Chrome, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def shot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # The whole page, not just the window: the layout's height at this width.
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    width = int(driver.execute_script("return window.innerWidth"))
    driver.execute_script("window.scrollTo(0, 0)")
    size = driver.get_window_size()
    driver.set_window_size(size["width"], max(size["height"], height + 120))
    try:
        assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    finally:
        driver.set_window_size(size["width"], size["height"])
    assert width > 0
    return path


def severe_logs(driver: webdriver.Chrome, allowed: str | None = None) -> list[str]:
    """The browser console's errors (CSP violations, script errors, failed loads), except
    those matching ``allowed`` (a regular expression)."""
    logs = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        entry["message"]
        for entry in logs
        if entry["level"] == "SEVERE" and not (allowed and re.search(allowed, entry["message"]))
    ]


def resource_origins(driver: webdriver.Chrome) -> set[str]:
    """The origins of everything the page loaded or fetched."""
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    return {re.sub(r"^(\w+://[^/]+).*$", r"\1", url) for url in urls}
