"""Paying an order: the provider is charged outside the order's lock, once per attempt."""

import threading
from decimal import Decimal

import pytest
from django.db import OperationalError

from accounts.models import User
from inventory import services as inventory_services
from orders import services
from orders.exceptions import InvalidTransition
from orders.invariants import check_invariants
from orders.models import Order
from orders.payments import PaymentResult
from orders.services import order_cancel, order_pay
from orders.tasks import payments_complete_stale
from orders.writer import order_writer_drain
from tests.concurrency import start_thread
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingProvider:
    """Like a real provider: a repeated idempotency key gets the first answer, never a second
    charge. Remembers every call, and can be held in the middle of a charge."""

    charges: dict[str, Decimal] = {}
    refunds: dict[str, str] = {}
    calls: list[str] = []
    hold: threading.Event | None = None
    holding: threading.Event | None = None

    def charge(self, *, order: Order, idempotency_key: str | None = None) -> PaymentResult:
        # Without a key, every call is a new charge.
        idempotency_key = idempotency_key or f"unkeyed-{len(self.calls)}"
        self.calls.append(idempotency_key)
        if self.holding is not None:
            self.holding.set()
            self.hold.wait(5)
        self.charges.setdefault(idempotency_key, order.total)
        return PaymentResult(approved=True, reference=f"ch-{idempotency_key}")

    def refund(self, *, reference: str, amount: Decimal, idempotency_key: str) -> PaymentResult:
        self.refunds.setdefault(idempotency_key, reference)
        return PaymentResult(approved=True, reference=f"re-{idempotency_key}")


@pytest.fixture
def provider(settings):
    settings.PAYMENT_PROVIDER = "tests.orders.test_payments.RecordingProvider"
    RecordingProvider.charges, RecordingProvider.refunds, RecordingProvider.calls = {}, {}, []
    RecordingProvider.hold = RecordingProvider.holding = None
    return RecordingProvider


def an_order(make_sale) -> Order:
    sale = make_sale(quantity=3)
    purchase(client_for(UserFactory()), sale, key="k")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    return Order.objects.get()


def failing_once(monkeypatch, name: str) -> None:
    """The order services' call of the inventory service `name` fails once, as if the database
    connection dropped before commit; later calls go through."""
    real = getattr(inventory_services, name)
    failed = []

    def call(**kwargs):
        if not failed:
            failed.append(True)
            raise OperationalError("the connection dropped before commit")
        return real(**kwargs)

    monkeypatch.setattr(services, name, call)


def test_a_failure_after_the_charge_is_completed_by_paying_again_without_a_second_charge(
    make_sale, provider, monkeypatch
):
    order = an_order(make_sale)
    failing_once(monkeypatch, "stock_sell")

    # When the database fails after the provider charged
    with pytest.raises(OperationalError):
        order_pay(order=order, actor=order.user)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert len(provider.charges) == 1

    # Then paying again completes the same charge: the order is paid, the shopper charged once
    paid = order_pay(order=order, actor=order.user)
    assert paid.status == Order.Status.PAID
    assert len(provider.charges) == 1
    assert len(provider.calls) == 2
    assert check_invariants().ok, check_invariants().violations


def test_the_payments_sweep_completes_a_charge_its_request_left_unfinished(make_sale, provider, monkeypatch):
    order = an_order(make_sale)
    failing_once(monkeypatch, "stock_sell")
    with pytest.raises(OperationalError):
        order_pay(order=order, actor=order.user)

    assert payments_complete_stale(older_than_seconds=0) == 1

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert len(provider.charges) == 1
    assert check_invariants().ok, check_invariants().violations


def test_the_provider_is_called_without_holding_the_orders_lock(make_sale, provider):
    # Given a charge that takes its time at the provider
    order = an_order(make_sale)
    provider.hold, provider.holding = threading.Event(), threading.Event()
    paying, paid = start_thread(lambda: order_pay(order=order, actor=order.user))
    assert provider.holding.wait(30)

    # When the shopper cancels meanwhile, the cancel does not wait for the provider
    try:
        order_cancel(order=Order.objects.get(pk=order.pk), actor=None, reason="changed mind")
    finally:
        provider.hold.set()
        paying.join(30)

    # Then the order is cancelled, and the charge that completed too late is refunded
    assert isinstance(paid[0], InvalidTransition)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert len(provider.charges) == 1
    assert list(provider.refunds.values()) == [f"ch-{next(iter(provider.charges))}"]
    with pytest.raises(InvalidTransition):
        order_pay(order=order, actor=order.user)
    assert check_invariants().ok, check_invariants().violations


def test_the_back_office_shows_an_orders_payment_attempts_read_only(make_sale, provider, client):
    order = an_order(make_sale)
    order_pay(order=order, actor=order.user)
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "a long admin passphrase"))

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    listing = client.get("/admin/orders/paymentattempt/").content.decode()

    key = order.payment_attempts.get().idempotency_key
    assert key in page and "succeeded" in page
    assert key in listing
    assert client.get(f"/admin/orders/paymentattempt/{order.payment_attempts.get().pk}/delete/").status_code == 403
