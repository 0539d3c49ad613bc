"""Headless Chromium for the browser tests: Debian's `chromium` driven through Debian's
`chromium-driver` by selenium. Nothing is downloaded: selenium is given both paths, so its
driver manager never runs. `make test` installs the two packages when it runs as root with
apt; elsewhere the browser tests skip and say why."""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver",)


def _first(paths: tuple[str, ...], name: str) -> str | None:
    return next((p for p in paths if Path(p).is_file()), None) or shutil.which(name)


def browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip the test with the reason and the fix; with
    GENLOOP_REQUIRE_BROWSER=1 (CI: .ci/run sets it) a missing browser fails the test."""
    chromium, driver = _first(CHROMIUM, "chromium"), _first(DRIVER, "chromedriver")
    if not chromium or not driver:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
        why = (f"{missing} not installed: browser tests need Debian's chromium and chromium-driver "
               f"(`make test` installs them when run as root with apt-get; else "
               f"`sudo apt-get install chromium chromium-driver`)")
        if os.environ.get("GENLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GENLOOP_REQUIRE_BROWSER=1 and {why}")
        pytest.skip(why)
    return chromium, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium session (selenium WebDriver), quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_in_page(driver, predicate, seconds: float, what: str):
    """Poll `predicate(driver)` until truthy (JavaScript-rendered pages fill in late); on
    timeout fail with what was awaited and the page's visible text."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = predicate(driver)
        except Exception:           # element not there yet, stale, script error while loading
            value = None
        if value:
            return value
        time.sleep(0.5)
    body = driver.execute_script("return document.body ? document.body.innerText : ''") or ""
    pytest.fail(f"timed out waiting for {what} at {driver.current_url}; page text:\n{body[:2000]}")


SCREENSHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"


def screenshot(driver, name: str) -> Path:
    """Save what the browser shows to runs/screenshots/<name>.png (for a person to look at;
    README's pictures under docs/ are copies of these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
