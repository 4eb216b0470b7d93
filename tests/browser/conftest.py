"""Real-browser fixtures: Playwright (sync API) driving Debian's `chromium` against pytest-django's live server.

Use them from any test module under tests/browser:

    pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the live server reads what the
    # test writes; serialized_rollback keeps the database as the later serialized tests expect it

    def test_something(page, logged_in, screenshot, owner):
        logged_in(page, owner)                   # through the real /login/ form; password "pw-<username>"
        page.goto("/interventions/")             # relative to live_server.url
        expect(page.get_by_role("heading", name="Interventions")).to_be_visible()
        screenshot(page, "interventions")        # docs/screenshots/interventions.png, full page

    def test_small_screen(phone, ...):           # a page at 390×844, touch, mobile viewport rules
        ...

`new_page(width, height, **context_options)` opens more pages (a second user, another size); every context a
test opens is closed after it. `tab_to(page, locator)` presses Tab until the locator has the keyboard focus.

The browser is Debian's chromium (`shutil.which("chromium")`), never one downloaded by `playwright install`;
without it every test here is skipped with the reason. CI (.ci/run) installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, sync_playwright

CHROMIUM = shutil.which("chromium")
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"
DESKTOP = (1280, 900)
PHONE = (390, 844)
# Fail fast: everything here runs against a local server, so 5 s without the expected state is a failure.
TIMEOUT_MS = 5_000
SERIALIZED: dict[str, str] = {}  # each database's serialized copy, as the test run stored it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without chromium, skip every test in this directory (and only those) before any fixture starts."""
    if CHROMIUM is not None:
        return
    skip = pytest.mark.skip(reason="browser tests need Debian's chromium on PATH (apt-get install chromium); "
                                   "`playwright install` is not used")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for all the browser tests.

    Package scope, not session scope, on purpose: while the sync API is started, an asyncio loop counts as
    running in the main thread (its dispatcher greenlet), so Django refuses ORM calls there as "async unsafe"
    and `asyncio.run` would fail too. Stopping it after the last browser test keeps the rest of the suite
    unaffected. In between, the test's own ORM calls (fixtures, assertions) run synchronously in the main thread
    while that loop is suspended, which is exactly what DJANGO_ALLOW_ASYNC_UNSAFE allows; it is set only here.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SERIALIZED.update({alias: connections[alias]._test_serialized_contents for alias in connections
                       if hasattr(connections[alias], "_test_serialized_contents")})
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _serialized_contents(playwright: Playwright) -> None:
    """Keep serialized rollback working while Playwright runs. With its loop "running" in the main thread, Django's
    connection handler hands the test a different connection object than the one the test database's serialized
    copy was stored on; without that copy, the flush after a transactional test runs post_migrate, and PostgreSQL
    (whose sequences a flush does not reset) recreates the content types under new ids — which every later
    serialized-rollback test then collides with. Giving the copy to the connection the test sees keeps the
    browser tests independent of their place in the run."""
    for alias, contents in SERIALIZED.items():
        if not hasattr(connections[alias], "_test_serialized_contents"):
            connections[alias]._test_serialized_contents = contents


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian chromium, shared by the browser tests (each test gets its own context, so no state leaks)."""
    if CHROMIUM is None:  # the collection hook already skipped; this guards a direct request from elsewhere
        pytest.skip("browser tests need chromium on PATH")
    # Chromium's sandbox cannot start as root (CI runs as root); the pages are our own, so nothing is lost.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def new_page(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    """A factory of pages, each in a fresh context (own cookies) sized width×height, with relative URLs resolved
    against the live server; extra keyword arguments go to `browser.new_context`."""
    contexts: list[BrowserContext] = []

    def make(width: int = DESKTOP[0], height: int = DESKTOP[1], **options: Any) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url,
                                      **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A desktop page, 1280×900."""
    return new_page(*DESKTOP)


@pytest.fixture
def phone(new_page: Callable[..., Page]) -> Page:
    """A phone page, 390×844, as a phone's browser lays it out (meta viewport honoured, touch)."""
    return new_page(*PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)


@pytest.fixture
def logged_in() -> Callable[..., Page]:
    """`logged_in(page, user, password=None)`: log in through the real form at /login/ and return the page.

    `user` is a user or a username; the password defaults to the one tests/conftest.py's make_user sets
    ("pw-" + username). Fails with the page's message if the login is refused."""

    def log_in(page: Page, user: Any, password: str | None = None) -> Page:
        username = user if isinstance(user, str) else user.get_username()
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password if password is not None else "pw-" + username)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        if page.url.split("?")[0].endswith("/login/"):
            error = page.locator(".error")
            reason = error.inner_text() if error.count() else "no error shown"
            raise AssertionError(f"login as {username!r} was refused: {reason}")
        return page

    return log_in


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """`screenshot(page, name)`: save the full page to docs/screenshots/<name>.png and return the path."""

    def shoot(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # No caret blinking or mid-transition frames in the pictures, so they change only when the page does.
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        return path

    return shoot


@pytest.fixture
def tab_to() -> Callable[..., None]:
    """`tab_to(page, locator, limit=50)`: press Tab until `locator` has the keyboard focus (fails after `limit`
    presses), as a keyboard user reaches it; the focus starts wherever it is now."""

    def press_until(page: Page, locator: Locator, limit: int = 50) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            # Resolved again each time: a polled region may have swapped the element in the meantime.
            if locator.evaluate("element => element === document.activeElement"):
                return
        raise AssertionError(f"{locator} not reached with {limit} presses of Tab")

    return press_until
