"""Playwright (sync API) driving Debian's chromium, headless: no browser download.

``open_page`` records console errors, page errors and dialogs (an ``alert()`` from injected
markup would be one), so every test can assert that none happened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.export.servers import poll

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"


@dataclass
class Watched:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.dialogs, f"a dialog opened (injected script ran?): {self.dialogs}"
        assert not self.page_errors, f"page errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"

    def wait(self, what: str, js: str, timeout: float = 15.0) -> Any:
        """Poll a JS function (page.evaluate, which the page's CSP allows) until truthy."""
        return poll(what, lambda: self.page.evaluate(js), timeout=timeout, interval=0.1)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install '.[test]' (scripts/setup.sh --test)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (scripts/setup.sh --test)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser: Any, url: str, **context_args: Any) -> Iterator[Watched]:
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000}, **context_args)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    w = Watched(page)
    page.on("console", lambda m: w.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.page_errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        w.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(url)
        yield w
    finally:
        ctx.close()
