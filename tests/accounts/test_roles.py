"""The back office's roles: each sees and does exactly its part, in the admin and through the API."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from accounts.roles import ROLES, roles_apply
from inventory.models import StockAlert
from orders.models import Order
from orders.services import order_pay
from orders.writer import order_writer_drain
from tests.conftest import client_for, purchase
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

CLERK, MANAGER, SUPPORT = "stock clerk", "sales manager", "support"


@pytest.fixture(autouse=True)
def roles():
    """The groups the data migration makes (a transactional test's flush removed them)."""
    roles_apply(Group, Permission)


def member_of(role: str):
    user = StaffFactory()
    user.groups.add(Group.objects.get(name=role))
    return user


def an_order_of(sale) -> Order:
    shopper = UserFactory()
    purchase(client_for(shopper), sale, key="k")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    return Order.objects.get(user=shopper)


def test_each_role_holds_exactly_its_permissions():
    for role, perms in ROLES.items():
        group = Group.objects.get(name=role)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert have == set(perms), role


@pytest.fixture
def world(make_sale, staff):
    """A live sale, an unpaid order, a paid order, an open stock alert."""
    sale = make_sale(quantity=5, limit=5)
    unpaid = an_order_of(sale)
    paid = order_pay(order=an_order_of(sale), actor=None)
    alert = StockAlert.objects.create(stock=sale.sku.stock, available_at_open=1, threshold_at_open=10)
    return {"sale": sale, "unpaid": unpaid, "paid": paid, "alert": alert, "sku": sale.sku.code}


def api_calls(world) -> dict[str, tuple[str, str, dict]]:
    starts = timezone.now() + timedelta(hours=1)
    return {
        "see stock": ("get", "/api/v1/inventory/stock/", {}),
        "receive stock": ("post", f"/api/v1/inventory/stock/{world['sku']}/in/", {"quantity": 1, "reason": "delivery"}),
        "acknowledge an alert": ("post", f"/api/v1/inventory/alerts/{world['alert'].pk}/acknowledge/", {}),
        "create a sale": (
            "post",
            "/api/v1/flash-sales/",
            {
                "sku": world["sku"],
                "price": "1.00",
                "quantity": 1,
                "per_user_limit": 1,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=1)).isoformat(),
            },
        ),
        "preheat a sale": ("post", f"/api/v1/flash-sales/{world['sale'].pk}/preheat/", {}),
        "see a sale's stats": ("get", f"/api/v1/flash-sales/{world['sale'].pk}/stats/", {}),
        "see a shopper's order": ("get", f"/api/v1/orders/{world['unpaid'].pk}/", {}),
        "cancel a shopper's order": ("post", f"/api/v1/orders/{world['unpaid'].pk}/cancel/", {}),
        "refund an order": ("post", f"/api/v1/orders/{world['paid'].pk}/refund/", {"reason": "broken"}),
    }


ALLOWED = {
    CLERK: {"see stock", "receive stock", "acknowledge an alert"},
    MANAGER: {
        "see stock",
        "create a sale",
        "preheat a sale",
        "see a sale's stats",
        "see a shopper's order",
        "cancel a shopper's order",
    },
    SUPPORT: {"see a shopper's order", "cancel a shopper's order", "refund an order"},
}


@pytest.mark.parametrize("role", [CLERK, MANAGER, SUPPORT])
def test_through_the_api_each_role_does_exactly_its_part(world, role):
    client = client_for(member_of(role))
    done = set()
    for name, (method, path, body) in api_calls(world).items():
        headers = {"HTTP_IDEMPOTENCY_KEY": f"{role}-{name}"} if method == "post" else {}
        response = getattr(client, method)(path, body, format="json", **headers)
        assert response.status_code in (200, 201, 403, 404), (name, response.status_code, response.content)
        if response.status_code in (200, 201):
            done.add(name)
    assert done == ALLOWED[role]


def test_plain_staff_without_a_role_can_do_nothing_in_the_back_office(world):
    client = client_for(StaffFactory())
    for name, (method, path, body) in api_calls(world).items():
        response = getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=name)
        assert response.status_code in (403, 404), name
    assert Order.objects.get(pk=world["paid"].pk).status == Order.Status.PAID


ADMIN_PAGES = {
    "/admin/inventory/stock/": {CLERK, MANAGER},
    "/admin/inventory/stockmovement/": {CLERK},
    "/admin/inventory/stockalert/": {CLERK},
    "/admin/shop/flashsale/": {MANAGER},
    "/admin/orders/order/": {MANAGER, SUPPORT},
    "/admin/orders/refund/": {SUPPORT},
    "/admin/orders/paymentattempt/": {SUPPORT},
    "/admin/accounts/user/": {SUPPORT},
}
ADMIN_ACTIONS = {
    ("/admin/inventory/stockalert/", "acknowledge"): {CLERK},
    ("/admin/shop/flashsale/", "preheat"): {MANAGER},
    ("/admin/shop/flashsale/", "cancel"): {MANAGER},
    ("/admin/orders/order/", "cancel"): {MANAGER, SUPPORT},
    ("/admin/orders/order/", "refund"): {SUPPORT},
}


@pytest.mark.parametrize("role", [CLERK, MANAGER, SUPPORT])
def test_in_the_admin_each_role_sees_exactly_its_pages_and_actions(client, world, role):
    client.force_login(member_of(role))
    for page, roles in ADMIN_PAGES.items():
        assert (client.get(page).status_code == 200) == (role in roles), page
    for (page, action), roles in ADMIN_ACTIONS.items():
        listed = client.get(page)
        shown = listed.status_code == 200 and f'value="{action}"' in listed.content.decode()
        assert shown == (role in roles), (page, action)
    can_receive = client.get(f"/admin/inventory/stock/{world['sale'].sku.stock.pk}/receive/").status_code == 200
    assert can_receive == (role == CLERK)
