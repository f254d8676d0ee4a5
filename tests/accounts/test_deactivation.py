"""A deactivated account cannot buy: refused at admission, and again by the order writer."""

import pytest

from accounts.models import User
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.writer import order_writer_drain
from shop.services import flash_sale_reconcile
from tests.conftest import bearer_client, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "a long admin passphrase"))
    return client


def test_a_shopper_deactivated_in_the_back_office_is_refused_at_admission(make_sale, admin_client):
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    client = bearer_client(shopper)  # a token issued while the account was active
    assert purchase(client, sale, key="before").status_code == 202

    # When staff deactivate the account (action, then confirmation)
    admin_client.post(
        "/admin/accounts/user/", {"action": "deactivate_accounts", "_selected_action": [shopper.pk], "confirmed": "yes"}
    )

    # Then its token buys nothing more, and nothing is taken from the sale
    shopper.refresh_from_db()
    assert not shopper.is_active
    response = purchase(client, sale, key="after")
    assert (response.status_code, response.json()["code"]) == (403, "blocked")
    assert redis_sales.sale_remaining(sale.pk) == 4
    assert check_invariants().ok, check_invariants().violations


def test_a_reactivated_shopper_can_buy_again(make_sale, admin_client):
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    for action in ("deactivate_accounts", "reactivate_accounts"):
        admin_client.post(
            "/admin/accounts/user/", {"action": action, "_selected_action": [shopper.pk], "confirmed": "yes"}
        )

    assert purchase(bearer_client(shopper), sale, key="k").status_code == 202


def test_the_writer_refuses_a_reservation_of_an_account_deactivated_since(make_sale, brokered):
    # Given a reservation admitted while the account was active
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    client = bearer_client(shopper)
    rid = purchase(client, sale, key="k").json()["reservation_id"]

    # When the account is deactivated by any means before the writer runs
    User.objects.filter(pk=shopper.pk).update(is_active=False)
    assert order_writer_drain(sale_id=sale.pk, consumer="test")

    # Then no order is written, the reservation reports why, and its unit is back on offer
    assert not Order.objects.exists()
    assert FailedReservation.objects.get(reservation_id=rid).reason == FailedReservation.Reason.ACCOUNT_INACTIVE
    assert redis_sales.sale_remaining(sale.pk) == 5
    # and Redis, never told, does not refuse the account until reconciliation tells it
    assert [violation["invariant"] for violation in check_invariants().violations] == ["terms_agreement"]
    assert flash_sale_reconcile(sale=sale).terms_repaired
    assert purchase(client, sale, key="again").json()["code"] == "blocked"
    assert check_invariants().ok, check_invariants().violations


def test_unticking_active_on_the_account_page_blocks_its_purchases(make_sale, admin_client):
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    page = admin_client.get(f"/admin/accounts/user/{shopper.pk}/change/")
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    joined = shopper.date_joined
    data.update({"date_joined_0": joined.strftime("%Y-%m-%d"), "date_joined_1": joined.strftime("%H:%M:%S")})
    # An unticked box is simply absent from the form's data
    data = {name: value for name, value in data.items() if value not in ("", False, []) and name != "is_active"}

    response = admin_client.post(f"/admin/accounts/user/{shopper.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    shopper.refresh_from_db()
    assert not shopper.is_active
    response = purchase(bearer_client(shopper), sale, key="k")
    assert (response.status_code, response.json()["code"]) == (403, "blocked")
