from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import redis_sales
from orders.exceptions import InvalidTransition
from orders.invariants import check_invariants
from orders.models import Order
from orders.services import order_cancel, order_pay, orders_expire_unpaid
from orders.writer import order_writer_drain
from tests.concurrency import run_together
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def buy(sale, user) -> Order:
    purchase(client_for(user), sale, key=f"buy-{user.pk}")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    return Order.objects.get(flash_sale=sale, user=user)


def test_paying_sells_the_unit(make_sale):
    sale = make_sale(quantity=3)
    user = UserFactory()
    order = buy(sale, user)

    response = client_for(user).post(f"/api/v1/orders/{order.pk}/pay/")

    assert response.status_code == 200
    assert response.json()["status"] == "paid"
    stock = sale.sku.stock
    stock.refresh_from_db()
    assert (stock.on_hand, stock.allocated) == (5, 2)
    assert stock.movements.filter(kind="sell", reference=f"order:{order.pk}").count() == 1
    assert check_invariants().ok, check_invariants().violations

    again = client_for(user).post(f"/api/v1/orders/{order.pk}/pay/")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")


def test_only_the_owner_pays_and_others_do_not_see_the_order(make_sale):
    sale = make_sale(quantity=3)
    order = buy(sale, UserFactory())
    stranger = client_for(UserFactory())

    assert stranger.post(f"/api/v1/orders/{order.pk}/pay/").status_code == 404
    assert stranger.get(f"/api/v1/orders/{order.pk}/").status_code == 404
    assert stranger.post(f"/api/v1/orders/{order.pk}/cancel/").status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_an_unpaid_order_is_cancelled_at_its_deadline_and_its_unit_is_on_sale_again(make_sale):
    # Given a sold-out sale whose only order is past its time to pay
    sale = make_sale(quantity=1)
    order = buy(sale, UserFactory())
    assert purchase(client_for(UserFactory()), sale, key="early").json()["code"] == "sold_out"
    Order.objects.filter(pk=order.pk).update(pay_by=timezone.now() - timedelta(seconds=1))

    # When the timeout task runs, twice
    assert orders_expire_unpaid() == 1
    assert orders_expire_unpaid() == 0

    # Then the order is cancelled once, the unit is back in the database and in Redis
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.transitions.filter(to_status="cancelled").count() == 1
    sale.refresh_from_db()
    assert sale.units_sold == 0
    assert redis_sales.sale_remaining(sale.pk) == 1

    # And another shopper can buy it; paying the cancelled order is refused
    late = UserFactory()
    assert purchase(client_for(late), sale, key="late").status_code == 202
    with pytest.raises(InvalidTransition):
        order_pay(order=order, actor=order.user)
    order_writer_drain(sale_id=sale.pk, consumer="test")
    assert Order.objects.filter(user=late, status=Order.Status.PENDING_PAYMENT).count() == 1
    assert check_invariants().ok, check_invariants().violations


def test_an_expired_order_cannot_be_paid(make_sale):
    sale = make_sale(quantity=1)
    order = buy(sale, UserFactory())
    Order.objects.filter(pk=order.pk).update(pay_by=timezone.now() - timedelta(seconds=1))

    response = client_for(order.user).post(f"/api/v1/orders/{order.pk}/pay/")

    assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")


def test_a_payment_racing_the_cancellation_ends_with_exactly_one_of_the_two(make_sale):
    # Given 20 unpaid orders
    sale = make_sale(quantity=20)
    orders = [buy(sale, UserFactory()) for _ in range(20)]

    # When, for each, a payment and a timeout cancellation start at the same moment
    def pay_or_cancel(i: int):
        order = orders[i // 2]
        if i % 2:
            return order_pay(order=order, actor=order.user)
        return order_cancel(order=order, actor=None, reason="payment timeout")

    results = run_together(pay_or_cancel, 40)

    # Then every order ended in exactly one of the two states, and the loser was refused
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 20
    assert all(isinstance(error, InvalidTransition) for error in errors)
    for order in orders:
        order.refresh_from_db()
        assert order.status in {Order.Status.PAID, Order.Status.CANCELLED}
        assert order.transitions.count() == 1
    paid = Order.objects.filter(status=Order.Status.PAID).count()
    cancelled = Order.objects.filter(status=Order.Status.CANCELLED).count()
    sale.refresh_from_db()
    assert sale.units_sold == paid
    assert redis_sales.sale_remaining(sale.pk) == cancelled
    assert check_invariants().ok, check_invariants().violations


def test_the_owner_or_staff_can_cancel_and_the_unit_is_released(make_sale, staff):
    sale = make_sale(quantity=2)
    mine, theirs = buy(sale, UserFactory()), buy(sale, UserFactory())

    assert client_for(mine.user).post(f"/api/v1/orders/{mine.pk}/cancel/").json()["status"] == "cancelled"
    assert client_for(staff).post(f"/api/v1/orders/{theirs.pk}/cancel/").json()["status"] == "cancelled"
    again = client_for(staff).post(f"/api/v1/orders/{theirs.pk}/cancel/")

    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    assert redis_sales.sale_remaining(sale.pk) == 2
    assert check_invariants().ok, check_invariants().violations
