"""The back office in headless Chromium, one role at a time, each doing its whole job through the
admin's own pages: a stock clerk, a sales manager, a support agent."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from playwright.sync_api import expect

from accounts.roles import roles_apply
from inventory.models import Stock, StockAlert, StockMovement
from inventory.services import stock_issue, stock_receive
from orders.invariants import check_invariants
from orders.models import Order, Refund
from orders.services import order_pay
from orders.writer import order_writer_drain
from shop.models import FlashSale, FlashSaleEdit
from tests.conftest import client_for, purchase
from tests.e2e.conftest import PASSWORD, screenshot
from tests.factories import StaffFactory, StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def member_of(role: str):
    roles_apply(Group, Permission)  # a transactional test's flush removed the migration's groups
    user = StaffFactory(username=role.replace(" ", "-"))
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


def admin_sign_in(page, user) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def run_action(page, row_text: str, action: str) -> None:
    """Tick the change list's row holding `row_text`, choose `action` and press Go."""
    page.get_by_role("row").filter(has_text=row_text).get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Go").click()


def forbidden(page, path: str) -> bool:
    return page.goto(path).status == 403


def test_a_stock_clerk_acknowledges_an_alert_receives_and_counts_stock_and_sees_no_sales_or_orders(visit, staff):
    clerk = member_of("stock clerk")
    stock = stock_receive(stock=StockFactory(low_stock_threshold=10), quantity=12, actor=staff, reason="opening")
    stock = stock_issue(stock=stock, quantity=8, actor=staff, reason="to the shop floor")
    alert = StockAlert.objects.open().get(stock=stock)
    code = stock.sku.code
    page = visit("/")
    admin_sign_in(page, clerk)
    screenshot(page, "clerk-admin-index")
    nav = page.locator("#content-main")
    expect(nav.get_by_role("link", name="Stocks")).to_be_visible()
    expect(nav.get_by_role("link", name="Flash sales")).to_have_count(0)
    expect(nav.get_by_role("link", name="Orders")).to_have_count(0)

    page.goto("/admin/inventory/stockalert/")
    run_action(page, code, "Acknowledge selected alerts")
    expect(page.get_by_text("Acknowledge these open alerts?")).to_be_visible()
    page.get_by_role("button", name="Yes, I'm sure").click()
    expect(page.locator(".messagelist")).to_contain_text("Acknowledged: 1 of 1.")

    page.goto("/admin/inventory/stock/")
    page.get_by_role("row").filter(has_text=code).get_by_role("link", name="Receive").click()
    page.get_by_label("Quantity").fill("30")
    page.get_by_label("Reason").fill("delivery 4411")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Please confirm")).to_contain_text("Receive 30 units")
    screenshot(page, "clerk-receive-confirm")
    page.get_by_role("button", name="Yes, receive").click()
    expect(page.locator(".messagelist")).to_contain_text("Now 34 on hand")

    page.get_by_role("row").filter(has_text=code).get_by_role("link", name="Count").click()
    page.get_by_label("Counted on hand").fill("33")
    page.get_by_label("Reason").fill("shelf count")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Yes, count").click()
    expect(page.locator(".messagelist")).to_contain_text("Now 33 on hand")
    page.goto(f"/admin/inventory/stockmovement/?q={code}")
    screenshot(page, "clerk-ledger")

    alert.refresh_from_db()
    assert alert.acknowledged_by == clerk
    assert Stock.objects.get(pk=stock.pk).on_hand == 33
    by_clerk = StockMovement.objects.filter(stock=stock, actor=clerk).order_by("pk")
    assert [(m.kind, m.on_hand_delta) for m in by_clerk] == [
        (StockMovement.Kind.IN, 30),
        (StockMovement.Kind.ADJUST, -1),
    ]
    assert forbidden(page, "/admin/shop/flashsale/") and forbidden(page, "/admin/orders/order/")


def test_a_sales_manager_creates_edits_preheats_watches_and_cancels_a_sale(visit, staff, make_sale, redis_client):
    manager = member_of("sales manager")
    stock = stock_receive(stock=StockFactory(low_stock_threshold=0), quantity=50, actor=staff, reason="opening")
    code = stock.sku.code
    starts = timezone.localtime() + timedelta(hours=2)
    page = visit("/")
    admin_sign_in(page, manager)
    screenshot(page, "manager-admin-index")

    page.goto("/admin/shop/flashsale/add/")
    page.get_by_label("Title").fill("Midnight drop")
    page.locator(".field-sku .select2-selection").click()
    page.locator(".select2-search__field").fill(code)
    page.get_by_role("option", name=code).click()
    page.get_by_label("Price").fill("19.50")
    page.get_by_label("Quantity").fill("10")
    page.locator("#id_starts_at_0").fill(starts.strftime("%Y-%m-%d"))
    page.locator("#id_starts_at_1").fill(starts.strftime("%H:%M:%S"))
    page.locator("#id_ends_at_0").fill((starts + timedelta(hours=1)).strftime("%Y-%m-%d"))
    page.locator("#id_ends_at_1").fill((starts + timedelta(hours=1)).strftime("%H:%M:%S"))
    page.get_by_label("Per user limit").fill("2")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    sale = FlashSale.objects.get(title="Midnight drop")
    assert (sale.quantity, sale.price, sale.created_by) == (10, Decimal("19.50"), manager)
    assert Stock.objects.get(pk=stock.pk).allocated == 10

    page.get_by_label("Quantity").fill("14")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator(".field-version .readonly")).to_have_text("2")
    expect(page.get_by_role("row").filter(has_text="quantity: 10 → 14")).to_contain_text(manager.username)
    screenshot(page, "manager-sale-edited")
    edit = FlashSaleEdit.objects.get(flash_sale=sale)
    assert (edit.actor, edit.changes["quantity"]) == (manager, ["10", "14"])
    assert Stock.objects.get(pk=stock.pk).allocated == 14

    page.goto("/admin/shop/flashsale/")
    run_action(page, "Midnight drop", "Preheat selected sales into Redis")
    expect(page.locator(".messagelist")).to_contain_text("Preheated: 1 of 1.")
    run_action(page, "Midnight drop", "Cancel selected sales")
    expect(page.get_by_text("Cancel these sales?")).to_be_visible()
    page.get_by_role("button", name="Yes, I'm sure").click()
    expect(page.locator(".messagelist")).to_contain_text("Cancelled: 1 of 1.")
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.CANCELLED
    assert Stock.objects.get(pk=stock.pk).allocated == 0

    # A live sale's page keeps its numbers current by itself while shoppers buy.
    live = make_sale(quantity=5, limit=5)
    page.goto(f"/admin/shop/flashsale/{live.pk}/change/")
    numbers = page.locator(".field-live_numbers .readonly")
    expect(numbers).to_contain_text("orders confirmed0")
    purchase(client_for(UserFactory()), live, key="k", quantity=3)
    order_writer_drain(sale_id=live.pk, consumer="test")
    expect(numbers).to_contain_text("orders confirmed1", timeout=12_000)
    expect(page.locator(".field-report .readonly")).to_contain_text("3")
    screenshot(page, "manager-live-sale")
    assert forbidden(page, "/admin/inventory/stockmovement/") and forbidden(page, "/admin/orders/refund/")
    assert check_invariants().ok, check_invariants().violations


def test_a_support_agent_finds_a_shoppers_order_and_refunds_it_with_a_reason(visit, make_sale):
    agent = member_of("support")
    sale = make_sale(quantity=5, limit=5)
    shopper = UserFactory(username="dora")
    purchase(client_for(shopper), sale, key="k", quantity=2)
    order_writer_drain(sale_id=sale.pk, consumer="test")
    order = order_pay(order=Order.objects.get(user=shopper), actor=shopper)
    on_hand = Stock.objects.get(sku=sale.sku).on_hand
    page = visit("/")
    admin_sign_in(page, agent)

    page.goto("/admin/accounts/user/")
    page.locator("#searchbar").fill("dora")
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list")).to_contain_text("dora")
    page.goto("/admin/orders/order/")
    page.locator("#searchbar").fill("dora")
    page.locator("#searchbar").press("Enter")
    run_action(page, "dora", "Refund selected paid orders (money back, units back to stock)")
    expect(page.get_by_text("Refund these paid orders?")).to_be_visible()
    page.get_by_label("Reason (kept with each record)").fill("arrived broken")
    screenshot(page, "support-refund-confirm")
    page.get_by_role("button", name="Yes, I'm sure").click()
    expect(page.locator(".messagelist")).to_contain_text("Refunded: 1 of 1.")
    page.goto(f"/admin/orders/order/{order.pk}/change/")
    # The order's history says who refunded it and why; nothing on its page can be saved.
    history = page.get_by_role("row").filter(has_text="Refunded").filter(has_text="arrived broken")
    expect(history).to_contain_text(agent.username)
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    screenshot(page, "support-order-refunded")

    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert (Refund.objects.get(order=order).actor, Refund.objects.get(order=order).reason) == (agent, "arrived broken")
    assert Stock.objects.get(sku=sale.sku).on_hand == on_hand + 2
    assert StockMovement.objects.filter(kind=StockMovement.Kind.RETURN, reference=f"order:{order.pk}").count() == 1
    assert forbidden(page, "/admin/inventory/stock/") and forbidden(page, "/admin/shop/flashsale/add/")
    assert check_invariants().ok, check_invariants().violations
