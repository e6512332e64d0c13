"""Headless Chromium for tests that look at rendered pages (the MLflow UI on a sparktrack store).

Uses Debian's ``chromium`` and ``chromium-driver`` packages through Selenium. Nothing is
downloaded or installed here: ``make test`` (and so ``.ci/run``) installs both packages. When
the browser is missing, :func:`chromium_paths` raises with the command that installs it, so a
CI run fails loudly instead of skipping the browser tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

# Chromium flags that work on a machine with no display and a closed network: without the
# background-networking flags Chromium keeps dialling out and its connections are refused.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)

# Texts the MLflow UI renders when a request failed: none may appear on a page under test.
ERROR_TEXTS = (
    "Internal server error", "Can't load run details", "Error loading",
    "Failed to load", "Something went wrong", "Page not found",
    "An error occurred while rendering",
)

INSTALL_HINT = (
    "The MLflow UI browser tests need Debian's Chromium and its driver: run "
    "`apt-get install -y chromium chromium-driver` (as root; `make test` does it) and "
    "`pip install -e '.[dev]'` for selenium."
)


def chromium_paths() -> tuple[str, str]:
    """``(browser, driver)`` paths, from ``SPARKTRACK_CHROMIUM``/``SPARKTRACK_CHROMEDRIVER``
    or the PATH; raises ``RuntimeError`` naming the install command when either is missing."""
    browser = os.environ.get("SPARKTRACK_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("SPARKTRACK_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
               if not path]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found. {INSTALL_HINT}")
    return browser, driver


class Browser:
    """One headless Chromium window with explicit, bounded waits and screenshots.

    ``shots`` is the folder screenshots go to; every wait gives up after ``timeout`` seconds
    with an ``AssertionError`` that quotes the start of the page text.
    """

    def __init__(self, *, shots: Path, timeout: float = 30.0):
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as exc:  # the dev extra was not installed
            raise RuntimeError(f"selenium is not installed. {INSTALL_HINT}") from exc
        browser, driver = chromium_paths()
        self.shots = Path(shots)
        self.shots.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="sparktrack-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        # A driver path given explicitly: Selenium Manager (which downloads drivers) stays idle.
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- navigation and reading -----------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)

    def text(self) -> str:
        """The rendered text of the whole page."""
        return self.driver.execute_script("return document.body ? document.body.innerText : ''")

    def wait_for(self, condition, *, what: str, timeout: float | None = None):
        """Poll ``condition()`` until it returns something truthy; return that value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                value = condition()
            except AssertionError:
                raise
            except Exception:  # noqa: BLE001 - a page mid-render may raise stale-element errors
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot("failed-wait")
                raise AssertionError(
                    f"timed out after {timeout or self.timeout:.0f}s waiting for {what} on "
                    f"{self.driver.current_url}; page text starts: {self.text()[:600]!r}")
            time.sleep(0.2)

    def wait_text(self, *texts: str, timeout: float | None = None) -> str:
        """Wait until every one of ``texts`` is in the rendered page; return the page text.
        An error text (:data:`ERROR_TEXTS`) showing up meanwhile fails at once."""
        def all_there():
            page = self.text()
            self._assert_no_error_text(page)
            return page if all(t in page for t in texts) else None
        return self.wait_for(all_there, what=f"texts {texts!r}", timeout=timeout)

    def wait_css(self, selector: str, *, timeout: float | None = None):
        """Wait until an element matches the CSS ``selector``; return the matches."""
        from selenium.webdriver.common.by import By

        return self.wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, selector),
                             what=f"element {selector!r}", timeout=timeout)

    def assert_no_errors(self, *, settle: float = 1.0) -> str:
        """Wait ``settle`` seconds for late requests, then fail if an error text shows."""
        time.sleep(settle)
        page = self.text()
        self._assert_no_error_text(page)
        return page

    def _assert_no_error_text(self, page: str) -> None:
        shown = [t for t in ERROR_TEXTS if t.lower() in page.lower()]
        if shown:
            self.screenshot("failed-error-text")
        assert not shown, (f"error text {shown} on {self.driver.current_url}: "
                           f"{page[:800]!r}")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
