"""The API's documentation pages and the shop's own files, in the browser, with every request to
anywhere but the shop cut off: a shop on a machine without internet documents its API all the
same."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot


@pytest.fixture
def offline_page(browser, live_server, transactional_db):
    """A page that reaches the live server and nothing else; the requests it refused, after."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    refused = []

    def only_the_shop(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_shop)
    page = context.new_page()
    failed = []
    page.on("pageerror", lambda error: failed.append(str(error)))
    yield page, refused, failed
    context.close()


def test_swagger_ui_renders_the_api_with_the_network_cut_off(offline_page):
    page, refused, failed = offline_page

    page.goto("/api/docs/")

    purchase = page.locator(".opblock-summary-path", has_text="/api/v1/flash-sales/{id}/purchase/")
    expect(purchase.first).to_be_visible()
    screenshot(page, "api-docs-offline")
    assert refused == [] and failed == []


def test_redoc_renders_the_api_with_the_network_cut_off(offline_page):
    page, refused, failed = offline_page

    page.goto("/api/redoc/")

    expect(page.locator("h1", has_text="Flash-sale shop API")).to_be_visible()
    expect(page.get_by_text("/api/v1/flash-sales/{id}/purchase/").first).to_be_attached()
    assert refused == [] and failed == []


def test_every_page_has_a_favicon_and_a_footer_of_the_shops_pages(offline_page):
    page, refused, _ = offline_page

    page.goto("/")

    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    linked = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(linked).status == 200
    footer = page.get_by_role("navigation", name="The shop's pages")
    for name in ("Sales", "Create an account", "API (try it)", "API reference"):
        href = footer.get_by_role("link", name=name).get_attribute("href")
        assert page.request.get(href).status == 200, name
    assert refused == []
