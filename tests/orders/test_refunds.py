"""Refunds (staff with the permission refund a paid order once, whatever the retries or races),
and the orders' CSV export."""

import csv
import io
import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError

from inventory.models import Stock, StockMovement
from orders.exceptions import InvalidTransition
from orders.invariants import check_invariants
from orders.models import Order, Refund
from orders.services import order_cancel, order_pay, order_refund
from orders.writer import order_writer_drain
from tests.concurrency import run_together, start_thread, wait_until_blocked_or_done
from tests.conftest import client_for, purchase
from tests.factories import StaffFactory, UserFactory
from tests.orders.test_payments import an_order, failing_once, provider  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


def refunder():
    staff = StaffFactory()
    staff.user_permissions.add(Permission.objects.get(codename="refund_order"))
    return staff


def a_paid_order(make_sale) -> Order:
    order = an_order(make_sale)
    return order_pay(order=order, actor=order.user)


def return_rows(order: Order) -> int:
    return StockMovement.objects.filter(kind=StockMovement.Kind.RETURN, reference=f"order:{order.pk}").count()


def refund_url(order: Order) -> str:
    return f"/api/v1/orders/{order.pk}/refund/"


def test_staff_with_the_permission_refund_a_paid_order_money_and_units_back_once(make_sale, provider):  # noqa: F811
    order = a_paid_order(make_sale)
    on_hand = Stock.objects.get(sku=order.sku).on_hand
    staff = refunder()

    response = client_for(staff).post(refund_url(order), {"reason": "arrived broken"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "refunded"
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.reason, refund.actor, refund.idempotency_key) == (
        order.total,
        "arrived broken",
        staff,
        f"refund-order-{order.pk}",
    )
    assert list(provider.refunds) == [f"refund-order-{order.pk}"]
    assert Stock.objects.get(sku=order.sku).on_hand == on_hand + order.quantity
    assert return_rows(order) == 1
    again = client_for(staff).post(refund_url(order), {"reason": "again"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    assert check_invariants().ok, check_invariants().violations


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        ("staff without the permission", {"reason": "x"}, 403, "permission_denied"),
        ("a shopper", {"reason": "x"}, 403, "permission_denied"),
        ("a refunder, no reason", {}, 400, "invalid"),
        ("a refunder, a blank reason", {"reason": "   "}, 400, "invalid"),
        ("a refunder, a reason longer than the records keep", {"reason": "x" * 300}, 400, "invalid"),
    ],
)
def test_a_refund_is_refused_without_the_permission_or_a_reason_and_changes_nothing(make_sale, who, body, status, code):
    order = a_paid_order(make_sale)
    user = {"staff without the permission": StaffFactory, "a shopper": UserFactory}.get(who, refunder)()

    response = client_for(user).post(refund_url(order), body, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert not Refund.objects.exists() and return_rows(order) == 0


def test_an_unpaid_order_cannot_be_refunded(make_sale):
    order = an_order(make_sale)

    response = client_for(refunder()).post(refund_url(order), {"reason": "x"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")


def test_two_staff_refunding_at_once_make_one_refund_and_one_ledger_row(make_sale, provider):  # noqa: F811
    order = a_paid_order(make_sale)
    staff = [refunder(), refunder()]

    answers = run_together(
        lambda i: client_for(staff[i]).post(refund_url(order), {"reason": f"by {i}"}, format="json").status_code, 2
    )

    assert sorted(answers) == [200, 409]
    assert Refund.objects.filter(order=order).count() == 1
    assert return_rows(order) == 1
    assert list(provider.refunds) == [f"refund-order-{order.pk}"]
    assert check_invariants().ok, check_invariants().violations


def test_a_cancel_racing_a_refund_waits_for_it_and_is_refused(make_sale, provider, monkeypatch):  # noqa: F811
    order = a_paid_order(make_sale)
    refunding, release = threading.Event(), threading.Event()
    real_refund = provider.refund

    def held_refund(self, **kwargs):
        refunding.set()
        release.wait(10)
        return real_refund(self, **kwargs)

    monkeypatch.setattr(provider, "refund", held_refund)
    refund_thread, refunded = start_thread(lambda: order_refund(order=order, actor=None, reason="racing"))
    assert refunding.wait(10)  # the refund holds the order's row
    cancel_thread, cancelled = start_thread(lambda: order_cancel(order=order, actor=None, reason="racing"))
    wait_until_blocked_or_done(cancel_thread)
    release.set()
    refund_thread.join(10)
    cancel_thread.join(10)

    assert refunded[0].status == Order.Status.REFUNDED
    assert isinstance(cancelled[0], InvalidTransition)
    assert Refund.objects.filter(order=order).count() == 1 and return_rows(order) == 1
    assert check_invariants().ok, check_invariants().violations


def test_a_refund_whose_commit_failed_is_asked_again_under_the_same_key(make_sale, provider, monkeypatch):  # noqa: F811
    order = a_paid_order(make_sale)
    failing_once(monkeypatch, "stock_return")
    with pytest.raises(OperationalError):
        order_refund(order=order, actor=None, reason="first try")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID and not Refund.objects.exists()

    order_refund(order=order, actor=None, reason="second try")

    # The provider saw the same key twice and, being idempotent, refunded once.
    assert list(provider.refunds) == [f"refund-order-{order.pk}"]
    assert Refund.objects.get(order=order).reason == "second try"
    assert return_rows(order) == 1
    assert check_invariants().ok, check_invariants().violations


def test_the_admin_refund_asks_for_confirmation_and_a_reason_and_only_staff_with_the_permission_see_it(
    client, make_sale
):
    order = a_paid_order(make_sale)
    changelist = "/admin/orders/order/"
    plain_staff = StaffFactory()
    plain_staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_order", "change_order"]))
    client.force_login(plain_staff)
    assert 'value="refund"' not in client.get(changelist).content.decode()

    staff = refunder()
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_order", "change_order"]))
    client.force_login(staff)
    form = {"action": "refund", "_selected_action": [order.pk]}
    assert 'value="refund"' in client.get(changelist).content.decode()
    asked = client.post(changelist, form)
    assert "Refund these paid orders?" in asked.content.decode()
    no_reason = client.post(changelist, {**form, "confirmed": "yes", "reason": " "})
    assert "A reason is required." in no_reason.content.decode()
    too_long = client.post(changelist, {**form, "confirmed": "yes", "reason": "x" * 300}, follow=True)
    assert "not done: Keep the reason to 200 characters" in too_long.content.decode()
    assert not Refund.objects.exists()

    done = client.post(changelist, {**form, "confirmed": "yes", "reason": "customer changed mind"}, follow=True)

    assert "Refunded: 1 of 1." in done.content.decode()
    assert Refund.objects.get(order=order).reason == "customer changed mind"
    assert return_rows(order) == 1


def test_the_orders_csv_export_is_the_filtered_list(client, make_sale, staff):
    sale = make_sale(quantity=5, limit=1)
    for key in ("a", "b", "c"):
        purchase(client_for(UserFactory()), sale, key=key)
    order_writer_drain(sale_id=sale.pk, consumer="test")
    paid = order_pay(order=Order.objects.order_by("pk").first(), actor=None)
    client.force_login(staff)

    listed = client.get("/admin/orders/order/", {"status__exact": "pending_payment"})
    response = client.get("/admin/orders/order/export.csv", {"status__exact": "pending_payment"})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(row["id"]) for row in rows] == sorted(o.pk for o in listed.context["cl"].result_list)
    assert len(rows) == 2 and paid.pk not in {int(row["id"]) for row in rows}
    assert {row["status"] for row in rows} == {"pending_payment"}
    assert 'href="/admin/orders/order/export.csv?status__exact=pending_payment"' in listed.content.decode()
