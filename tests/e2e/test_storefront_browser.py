"""The storefront in headless Chromium around the second a sale opens: countdown, buying without
leaving the page, paying, sold out while the page is open, too many tries, phones, no script."""

import re
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from orders.invariants import check_invariants
from orders.models import Order
from orders.waiting_room import draw_number
from purchase.admission import purchase_admit
from purchase.waiting_room import waiting_room_join
from tests.e2e.conftest import PASSWORD, screenshot, sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Every text the status region shows, in order, even those that stay for a moment only.
RECORD_STATUS = """
window.__statuses = [];
document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector('[data-role="status"]');
  if (status) new MutationObserver(() => window.__statuses.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
});
"""


def shopper(username: str = "") -> User:
    user = UserFactory(**({"username": username} if username else {}))
    user.set_password(PASSWORD)
    user.save()
    return user


def test_a_new_shopper_sees_the_countdown_tick_buys_at_the_start_without_a_reload_and_pays(visit, make_sale):
    sale = make_sale(quantity=5, limit=1, starts_in=20)
    page = visit("/accounts/signup/")
    page.add_init_script(RECORD_STATUS)
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/")

    page.goto(f"/sales/{sale.pk}/")
    button = page.get_by_role("button", name=re.compile("Starts soon|Buy now"))
    expect(button).to_be_disabled()
    countdown = page.locator('[data-role="countdown"]')
    first = countdown.text_content()
    assert first.startswith("Starts in")
    expect(countdown).not_to_have_text(first)  # it ticks

    expect(page.get_by_role("button", name="Buy now")).to_be_enabled(timeout=25_000)
    url = page.url
    page.get_by_role("button", name="Buy now").click()

    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    assert page.url == url  # bought without leaving the page
    statuses = page.evaluate("window.__statuses")
    # The live region announced the last seconds and the start, then the purchase.
    assert {"The sale starts in 10 seconds.", "The sale has started."} <= set(statuses), statuses
    assert statuses.index("The sale starts in 10 seconds.") < statuses.index("The sale has started."), statuses
    assert any("In line" in text for text in statuses)
    expect(page.locator('[data-role="pay-countdown"]')).to_contain_text("Pay within")
    page.get_by_role("button", name="Pay now").click()

    expect(page.locator(".messages")).to_contain_text("is paid")
    order = Order.objects.get(user__username="newcomer")
    assert order.status == Order.Status.PAID
    assert check_invariants().ok, check_invariants().violations


def test_a_double_click_and_a_resubmitted_form_buy_once(visit, make_sale):
    sale = make_sale(quantity=5, limit=3)
    user = shopper()
    page = visit("/")
    sign_in(page, user, f"/sales/{sale.pk}/")
    page.get_by_role("button", name="Buy now").dblclick()
    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    assert Order.objects.filter(user=user).count() == 1

    # Without script: the form posted, then posted again from the back button, same attempt.
    plain = visit("/", java_script_enabled=False)
    sign_in(plain, user, f"/sales/{sale.pk}/")
    plain.get_by_role("button", name="Buy now").click()
    plain.wait_for_url("**/purchases/**")
    plain.go_back()
    plain.get_by_role("button", name="Buy now").click()
    plain.wait_for_url("**/purchases/**")
    assert Order.objects.filter(user=user).count() == 2  # one per attempt: the page's and the plain form's
    assert check_invariants().ok, check_invariants().violations


def test_the_button_turns_to_sold_out_when_the_last_unit_goes_while_the_page_is_open(visit, make_sale):
    sale = make_sale(quantity=1, limit=1)
    page = visit("/")
    sign_in(page, shopper(), f"/sales/{sale.pk}/")
    expect(page.get_by_role("button", name="Buy now")).to_be_enabled()

    purchase_admit(sale_id=sale.pk, user_id=shopper().pk, quantity=1, idempotency_key="elsewhere")

    expect(page.get_by_role("button", name="Sold out")).to_be_disabled(timeout=3_000)
    expect(page.locator('[data-role="badge"]')).to_have_text("sold out")
    expect(page.locator('[data-role="remaining"]')).to_have_text("0")


def test_a_shopper_who_tries_too_often_is_told_when_to_retry_not_shown_json(visit, make_sale, settings):
    sale = make_sale(quantity=10, limit=10)
    settings.RATE_LIMITS = {"purchase": {"user": (0.01, 1)}}
    user = shopper()
    purchase_admit(sale_id=sale.pk, user_id=user.pk, quantity=1, idempotency_key="first",
                   limits=_limits(user))  # fmt: skip

    page = visit("/")
    sign_in(page, user, f"/sales/{sale.pk}/")
    page.get_by_role("button", name="Buy now").click()
    expect(page.locator('[data-role="status"]')).to_contain_text(re.compile(r"Please wait \d+ s"))

    plain = visit("/", java_script_enabled=False)
    sign_in(plain, user, f"/sales/{sale.pk}/")
    with plain.expect_response(re.compile(r"/buy/$")) as answer:
        plain.get_by_role("button", name="Buy now").click()
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) >= 1
    expect(plain.get_by_role("heading")).to_have_text("Too many tries at once")
    expect(plain.locator("main")).to_contain_text(re.compile(r"wait \d+ seconds?"))


def _limits(user):
    from limits.buckets import Limit

    return [Limit(f"purchase:user:{user.pk}", 0.01, 1)]


@pytest.mark.parametrize("width", [320, 375])
def test_no_page_scrolls_sideways_on_a_phone(visit, make_sale, width):
    sale = make_sale(quantity=5)
    user = shopper()
    page = visit("/", viewport={"width": width, "height": 740})
    for path in ["/", "/accounts/login/", "/accounts/signup/", f"/sales/{sale.pk}/"]:
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    sign_in(page, user, f"/sales/{sale.pk}/")
    for path in [f"/sales/{sale.pk}/", "/orders/"]:
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path


def test_axe_finds_no_serious_or_critical_violation_on_any_storefront_page(visit, make_sale):
    sale = make_sale(quantity=5)
    user = shopper()
    page = visit("/")
    axe = Axe()

    def serious(path: str) -> list:
        page.goto(path)
        results = axe.run(page)
        return [(path, v["id"], v["impact"]) for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")]  # fmt: skip

    found = []
    for path in ["/", "/accounts/login/", "/accounts/signup/", f"/sales/{sale.pk}/"]:
        found += serious(path)
    sign_in(page, user, f"/sales/{sale.pk}/")
    found += serious(f"/sales/{sale.pk}/")
    page.get_by_role("button", name="Buy now").click()
    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    found += serious("/orders/")
    assert found == []


def test_without_javascript_a_shopper_still_buys_and_pays(visit, make_sale):
    sale = make_sale(quantity=5)
    user = shopper()
    page = visit("/", java_script_enabled=False)
    sign_in(page, user, f"/sales/{sale.pk}/")
    page.get_by_role("button", name="Buy now").click()
    page.wait_for_url("**/purchases/**")
    expect(page.get_by_role("heading", name="It's yours!")).to_be_visible()
    page.get_by_role("button", name="Pay now").click()
    expect(page.locator(".messages")).to_contain_text("is paid")
    assert Order.objects.get(user=user).status == Order.Status.PAID


def test_the_home_page_and_the_orders_page_count_down_to_the_second(visit, make_sale):
    soon = make_sale(quantity=5, starts_in=600)
    live = make_sale(quantity=5, limit=2)
    user = shopper()
    purchase_admit(sale_id=live.pk, user_id=user.pk, quantity=1, idempotency_key="mine")
    page = visit("/")

    for selector in [f'a[href="/sales/{soon.pk}/"]', f'a[href="/sales/{live.pk}/"]']:
        timer = page.locator(f"li:has({selector}) [data-count-to]")
        first = timer.text_content()
        assert re.match(r"(Starts|Ends) in \d+ min \d\d s", first), first
        expect(timer).not_to_have_text(first)
    sign_in(page, user, "/orders/")
    timer = page.locator("[data-count-to]")
    first = timer.text_content()
    assert first.startswith("pay within")
    expect(timer).not_to_have_text(first)


def test_a_sale_in_waves_counts_down_to_the_next_wave_and_sells_its_units_when_it_opens(visit, make_sale):
    now = timezone.now()
    wave = now + timedelta(seconds=12)
    sale = make_sale(quantity=3, limit=1, waves=[(now - timedelta(seconds=30), 1), (wave, 2)])
    purchase_admit(sale_id=sale.pk, user_id=shopper().pk, quantity=1, idempotency_key="the-first-wave")
    page = visit("/")
    page.add_init_script(RECORD_STATUS)
    sign_in(page, shopper(), f"/sales/{sale.pk}/")

    # The first wave is gone: the page says a wave is to come and counts down to it
    expect(page.locator('[data-role="badge"]')).to_have_text("next wave")
    expect(page.get_by_role("button", name="Next wave soon")).to_be_disabled()
    countdown = page.locator('[data-role="countdown"]')
    expect(countdown).to_contain_text("Next wave in")
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first)  # it ticks
    waves = page.locator('[data-role="waves"]')
    expect(waves).to_contain_text("Released in 2 waves; the next opens at")
    expect(page.locator('[data-role="remaining"]')).to_have_text("0")
    expect(page.locator('[data-role="to-come"]')).to_have_text("2")  # not "0 of 3 left"
    screenshot(page, "shopper-next-wave-countdown")
    home = page.context.new_page()
    home.goto("/")
    card = home.locator(f'li:has(a[href="/sales/{sale.pk}/"]) [data-count-to]')
    expect(card).to_contain_text("Next wave in")  # not "This sale is next wave."
    home.close()

    # At the wave the button opens by itself, and the shopper buys one of its units
    expect(page.get_by_role("button", name="Buy now")).to_be_enabled(timeout=25_000)
    expect(page.locator('[data-role="remaining"]')).to_have_text("2")
    expect(page.locator('[data-role="to-come"]')).to_have_text("0")
    expect(waves).to_have_text("Released in 2 waves; all of them are out.")  # the wave it named opened
    expect(countdown).to_contain_text("Ends in")  # never "Next wave" beside a live Buy now
    page.get_by_role("button", name="Buy now").click()
    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    assert "The next wave is open: units are on offer again." in page.evaluate("window.__statuses")
    assert Order.objects.filter(flash_sale=sale).count() == 2
    assert check_invariants().ok


def test_a_sale_that_asks_for_a_pass_has_the_page_solve_its_check_and_get_the_pass_before_the_start(
    visit, make_sale, settings
):
    settings.PURCHASE_PASS_LEAD = 6
    sale = make_sale(quantity=2, limit=1, starts_in=16, pass_challenge=True)
    page = visit("/")
    sign_in(page, shopper(), f"/sales/{sale.pk}/")

    # The check is solved during the countdown; the pass comes PURCHASE_PASS_LEAD before the start
    line = page.locator('[data-role="pass"]')
    expect(line).to_have_text("Check done. Your purchase pass is issued shortly before the start.", timeout=10_000)
    expect(page.get_by_role("button", name="Starts soon")).to_be_disabled()
    screenshot(page, "shopper-pass-check-done")
    expect(line).to_have_text("Your purchase pass is ready.", timeout=15_000)

    page.get_by_role("button", name="Buy now").click(timeout=20_000)
    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    screenshot(page, "shopper-bought-with-a-pass")
    assert Order.objects.filter(flash_sale=sale).count() == 1
    assert check_invariants().ok


def test_a_sale_with_a_waiting_room_shows_the_place_and_the_wait_and_opens_the_button_at_the_turn(visit, make_sale):
    sale = make_sale(quantity=5, limit=1, starts_in=12, waiting_room_opens_at=timezone.now(), let_through_per_second=1)
    me = shopper()
    # Early arrivals whom the draw puts ahead of ours (known from the seed), so that our turn
    # comes five seconds after the start, whenever the page learns its place.
    mine, ahead = draw_number(sale.waiting_room_seed, me.pk), 0
    while ahead < 5:
        user = UserFactory()
        waiting_room_join(sale_id=sale.pk, user_id=user.pk)
        ahead += draw_number(sale.waiting_room_seed, user.pk) < mine
    page = visit("/")
    sign_in(page, me, f"/sales/{sale.pk}/")

    line = page.locator('[data-role="queue"]')
    expect(line).to_contain_text("You are in the waiting room.")
    expect(page.get_by_role("button", name="Starts soon")).to_be_disabled()
    screenshot(page, "shopper-waiting-room-before-the-start")

    expect(line).to_contain_text("You are number 6 in line: 5 people ahead of you", timeout=20_000)
    expect(line).to_contain_text("about 5 units for them and you. Estimated wait:")
    expect(line).to_contain_text("You may leave this page and come back: your place is kept.")
    expect(page.get_by_role("button", name="Waiting for your turn")).to_be_disabled()
    progress = page.locator('[data-role="queue-progress"]')
    expect(progress).to_be_visible()
    first = float(progress.get_attribute("value"))
    moved = "(first) => Number(document.querySelector('[data-role=queue-progress]').value) > first"
    page.wait_for_function(moved, arg=first)  # on the clock, with no poll needed
    screenshot(page, "shopper-waiting-room-place-in-line")
    # Place 6 goes five seconds after the start, at one a second.
    page.get_by_role("button", name="Buy now").click(timeout=15_000)
    expect(page.locator('[data-role="status"]')).to_contain_text("Confirmed")
    expect(line).to_contain_text("It's your turn")
    assert Order.objects.filter(flash_sale=sale).count() == 1
    assert check_invariants().ok


@pytest.mark.parametrize("width", [320, 375])
def test_an_order_on_a_phone_is_a_card_with_its_actions_in_view_and_a_page_of_its_own(visit, make_sale, width):
    sale = make_sale(quantity=5, limit=2)
    user = shopper()
    purchase_admit(sale_id=sale.pk, user_id=user.pk, quantity=2, idempotency_key="mine")
    order = Order.objects.get(user=user)
    page = visit("/", viewport={"width": width, "height": 740})
    sign_in(page, user, "/orders/")

    card = page.locator(".order-card", has_text=f"Order #{order.pk}")
    for name in (re.compile(r"^Pay €19\.98$"), "Cancel order"):
        box = card.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, f"orders-{width}")
    violations = [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]

    card.get_by_role("link", name=f"Order #{order.pk}").click()
    page.wait_for_url(f"**/orders/{order.pk}/")
    expect(page.get_by_role("heading", name=f"Order #{order.pk}")).to_be_visible()
    facts = page.locator(".facts")
    expect(facts).to_contain_text("2 \u00d7 €9.99")
    expect(facts).to_contain_text("€19.98")
    expect(page.locator("[data-count-to]")).to_contain_text("pay within")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    violations += [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    screenshot(page, f"order-{width}")
    assert violations == []

    page.get_by_role("button", name="Cancel order").click()
    page.wait_for_url(f"**/orders/{order.pk}/")
    expect(page.locator(".messages")).to_contain_text("is cancelled")
    expect(page.locator(".history")).to_contain_text("cancelled (cancelled by customer)")


def test_the_sale_page_does_not_offer_buy_now_past_the_shoppers_limit(visit, make_sale):
    sale = make_sale(quantity=10, limit=2)
    user = shopper()
    purchase_admit(sale_id=sale.pk, user_id=user.pk, quantity=2, idempotency_key="both")
    page = visit("/")

    sign_in(page, user, f"/sales/{sale.pk}/")

    expect(page.locator('[data-role="holding"]')).to_have_text(
        "You hold 2 of the 2 allowed per shopper: you cannot buy more in this sale."
    )
    button = page.locator('[data-role="buy"]')
    expect(button).to_have_text("Limit reached")
    expect(button).to_be_disabled()
    screenshot(page, "sale-at-limit")
