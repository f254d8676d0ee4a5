"""Real threads on real PostgreSQL connections, released together by a barrier."""

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import OperationalError

from inventory.exceptions import InsufficientStock, VersionConflict
from inventory.models import Stock, StockAlert, StockMovement
from inventory.services import StockChange, stock_adjust, stock_apply, stock_issue, stock_receive
from tests.concurrency import run_together
from tests.factories import StaffFactory, StockFactory
from tests.inventory.invariants import assert_ledger_matches

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_stock_out_never_oversells():
    # Given a SKU with 20 units
    stock = stock_receive(stock=StockFactory(low_stock_threshold=0), quantity=20, actor=None, reason="opening")

    # When 50 threads each take one unit at the same moment
    results = run_together(
        lambda i: stock_issue(stock=Stock.objects.get(pk=stock.pk), quantity=1, actor=None, reason=f"t{i}"), 50
    )

    # Then exactly 20 succeed, the others are refused for insufficient stock, nothing else fails
    succeeded = [r for r in results if isinstance(r, Stock)]
    refused = [r for r in results if isinstance(r, InsufficientStock)]
    assert (len(succeeded), len(refused)) == (20, 30), results
    stock.refresh_from_db()
    assert stock.on_hand == 0
    assert stock.movements.filter(kind=StockMovement.Kind.OUT).count() == 20
    assert_ledger_matches(stock)


def test_allocating_two_skus_in_opposite_orders_never_deadlocks():
    # Given two SKUs with 100 units each
    first, second = (
        stock_receive(stock=StockFactory(low_stock_threshold=0), quantity=100, actor=None, reason="opening")
        for _ in range(2)
    )

    # When 40 threads allocate both at once, half of them naming the SKUs in the opposite order
    def allocate_both(i: int):
        pair = [first, second] if i % 2 else [second, first]
        changes = [StockChange(Stock.objects.get(pk=s.pk), StockMovement.Kind.ALLOCATE, 2) for s in pair]
        return stock_apply(changes=changes, actor=None, reason=f"bundle {i}")

    results = run_together(allocate_both, 40)

    # Then no transaction failed (a deadlock would surface as OperationalError) and totals add up
    assert not [r for r in results if isinstance(r, Exception)], results
    for stock in (first, second):
        stock.refresh_from_db()
        assert stock.allocated == 80
        assert stock.version == 2 + 40
        assert_ledger_matches(stock)


def test_two_adjusts_from_the_same_read_version_one_wins_one_conflicts():
    # Given a stock both clerks read at the same version
    stock = stock_receive(stock=StockFactory(low_stock_threshold=0), quantity=10, actor=None, reason="opening")
    read_version = stock.version

    # When both submit a count from that version at the same moment
    counts = [7, 12]
    results = run_together(
        lambda i: stock_adjust(
            stock=Stock.objects.get(pk=stock.pk),
            on_hand=counts[i],
            expected_version=read_version,
            actor=None,
            reason=f"count {i}",
        ),
        2,
    )

    # Then one wins, the other gets a conflict, and the stock holds the winner's count
    winners = [i for i, r in enumerate(results) if isinstance(r, Stock)]
    losers = [r for r in results if isinstance(r, VersionConflict)]
    assert len(winners) == 1
    assert len(losers) == 1
    stock.refresh_from_db()
    assert stock.on_hand == counts[winners[0]]
    assert stock.movements.filter(kind=StockMovement.Kind.ADJUST).count() == 1
    assert_ledger_matches(stock)


def test_concurrent_stock_outs_crossing_the_threshold_open_one_alert_and_send_one_email():
    clerk = StaffFactory(email="buyer@example.com")
    clerk.user_permissions.add(Permission.objects.get(codename="view_stockalert"))
    StaffFactory(email="sales@example.com")  # staff who may not see stock alerts get none
    # Given 30 units and a threshold of 10
    stock = stock_receive(stock=StockFactory(low_stock_threshold=10), quantity=30, actor=None, reason="opening")

    # When 25 threads take a unit each at once, crossing the threshold
    results = run_together(
        lambda i: stock_issue(stock=Stock.objects.get(pk=stock.pk), quantity=1, actor=None, reason=f"t{i}"), 25
    )

    # Then exactly one alert is open and one e-mail went out
    assert not [r for r in results if isinstance(r, Exception | OperationalError)], results
    assert StockAlert.objects.filter(stock=stock).count() == 1
    alert = StockAlert.objects.get(stock=stock)
    assert alert.is_open
    assert alert.notified_at is not None
    assert len(mail.outbox) == 1
    assert stock.sku.code in mail.outbox[0].subject
    assert mail.outbox[0].to == ["buyer@example.com"]

    # When stock is replenished above the threshold, the alert closes by itself
    stock_receive(stock=stock, quantity=20, actor=None, reason="delivery")
    alert.refresh_from_db()
    assert not alert.is_open
    assert len(mail.outbox) == 1
