import itertools

import pytest

from orders.exceptions import InvalidTransition
from orders.models import ALLOWED_TRANSITIONS, Order, OrderTransition
from orders.services import order_transition
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

ALLOWED = [(source, target) for source, targets in ALLOWED_TRANSITIONS.items() for target in targets]
FORBIDDEN = [pair for pair in itertools.product(Order.Status.values, repeat=2) if pair not in ALLOWED]


def test_the_transition_table_is_the_documented_state_machine():
    assert set(ALLOWED) == {
        ("pending_payment", "paid"),
        ("pending_payment", "cancelled"),
        ("paid", "fulfilled"),
        ("paid", "refunded"),
    }


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_allowed_transition_changes_status_and_is_recorded(source, target, user):
    order = OrderFactory(status=source)

    order_transition(order=order, to=target, actor=user, reason="test")

    order.refresh_from_db()
    assert order.status == target
    record = OrderTransition.objects.get(order=order)
    assert (record.from_status, record.to_status, record.actor) == (source, target, user)


@pytest.mark.parametrize(("source", "target"), FORBIDDEN)
def test_forbidden_transition_raises_and_changes_nothing(source, target):
    order = OrderFactory(status=source)
    updated_at = order.updated_at

    with pytest.raises(InvalidTransition):
        order_transition(order=order, to=target)

    order.refresh_from_db()
    assert order.status == source
    assert order.updated_at == updated_at
    assert not OrderTransition.objects.filter(order=order).exists()


def test_transition_from_a_stale_copy_uses_the_status_in_the_database():
    # Given two copies of one pending order, and one of them is paid
    order = OrderFactory()
    stale_copy = Order.objects.get(pk=order.pk)
    order_transition(order=order, to=Order.Status.PAID)

    # When the stale copy is cancelled, the database status (paid) decides, and refuses
    with pytest.raises(InvalidTransition):
        order_transition(order=stale_copy, to=Order.Status.CANCELLED)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
