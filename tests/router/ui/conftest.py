"""A real headless Chromium (the system's, never a downloaded one) driven by Playwright, one per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from commands.process import ServiceProcess

REPO = Path(__file__).resolve().parents[3]
# The screenshots the README shows, rewritten by every run.
SCREENSHOTS = REPO / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
# No sandbox as root; no background networking, which this machine's closed network would refuse anyway.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("no system Chromium: `make install` installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, service: ServiceProcess) -> Iterator:
    """Open a page of the service with an API key typed into its key field, as a user would."""
    contexts = []

    def open_(path: str, key: str) -> Page:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{service.url}{path}")
        page.fill("[data-testid=api-key]", key)
        page.dispatch_event("[data-testid=api-key]", "change")  # stores the key and reloads
        page.wait_for_load_state("load")
        page.script_errors = errors  # type: ignore[attr-defined]
        return page

    yield open_
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
