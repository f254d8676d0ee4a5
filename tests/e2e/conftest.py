"""Browser tests: Playwright for Python driving the machine's Chromium (Debian's `chromium`,
never a browser Playwright would download) against a live server on the real stack."""

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

PASSWORD = "a long enough passphrase"


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("The browser tests need Chromium: `apt-get install chromium` (make test does it as root), "
                    "or point CHROMIUM at a Chromium binary.")  # fmt: skip
    return found


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop in this thread while it runs; the tests' own ORM
    # calls are synchronous all the same. Only for this module: a deployment must never set it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            yield launched
            launched.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def visit(browser, live_server, transactional_db, redis_client):
    """`visit(path, **context options)`: a page of a fresh browser context at the live server."""
    contexts = []

    def open_page(path: str = "/", **options):
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, user, then: str) -> None:
    """Sign in through the login form, then land on `then`."""
    page.goto(f"/accounts/login/?next={then}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{then}")


def screenshot(page, name: str) -> None:
    """Keep a picture of the page as `<name>.png` in $SCREENSHOT_DIR, when it is set: for a person
    to look at what a test walked through."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)
