import pytest
from django.db import IntegrityError, connection, transaction

from inventory.exceptions import InsufficientStock, InvalidQuantity, VersionConflict
from inventory.models import StockMovement
from inventory.services import (
    StockChange,
    stock_adjust,
    stock_allocate,
    stock_apply,
    stock_issue,
    stock_receive,
    stock_release,
    stock_return,
    stock_sell,
    stock_update_threshold,
)
from tests.factories import StockFactory
from tests.inventory.invariants import assert_ledger_matches

pytestmark = pytest.mark.django_db

Kind = StockMovement.Kind


@pytest.fixture
def stock(staff):
    stock = StockFactory(low_stock_threshold=0)
    return stock_receive(stock=stock, quantity=10, actor=staff, reason="opening")


def test_every_kind_of_change_moves_the_right_counters_and_writes_one_movement(stock, staff):
    steps = [
        (stock_receive, 5, (15, 0)),
        (stock_issue, 3, (12, 0)),
        (stock_allocate, 4, (12, 4)),
        (stock_release, 1, (12, 3)),
        (stock_sell, 2, (10, 1)),
        (stock_return, 2, (12, 1)),
    ]
    for service, quantity, (on_hand, allocated) in steps:
        version = stock.version
        stock = service(stock=stock, quantity=quantity, actor=staff, reason="test", reference="ref:1")

        assert (stock.on_hand, stock.allocated) == (on_hand, allocated)
        assert stock.version == version + 1
        movement = stock.movements.first()
        assert (movement.quantity, movement.on_hand_after, movement.allocated_after) == (quantity, on_hand, allocated)
        assert (movement.actor, movement.reason, movement.reference) == (staff, "test", "ref:1")

    assert stock.movements.count() == len(steps) + 1
    assert_ledger_matches(stock)


@pytest.mark.parametrize(
    ("service", "quantity"),
    [(stock_issue, 11), (stock_allocate, 11), (stock_release, 1), (stock_sell, 1)],
)
def test_a_change_past_the_bounds_raises_and_writes_nothing(stock, staff, service, quantity):
    with pytest.raises(InsufficientStock):
        service(stock=stock, quantity=quantity, actor=staff, reason="too much")

    stock.refresh_from_db()
    assert (stock.on_hand, stock.allocated, stock.version) == (10, 0, 2)
    assert stock.movements.count() == 1


def test_issue_cannot_take_allocated_units(stock, staff):
    stock_allocate(stock=stock, quantity=8, actor=staff, reason="sale")

    with pytest.raises(InsufficientStock):
        stock_issue(stock=stock, quantity=3, actor=staff, reason="damaged")

    stock_issue(stock=stock, quantity=2, actor=staff, reason="damaged")
    assert_ledger_matches(stock)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "3", True, None])
def test_a_quantity_that_is_not_a_positive_integer_is_refused(stock, staff, quantity):
    with pytest.raises(InvalidQuantity):
        stock_receive(stock=stock, quantity=quantity, actor=staff, reason="bad")

    assert stock.movements.count() == 1


def test_several_skus_change_all_or_nothing(staff):
    first = stock_receive(stock=StockFactory(), quantity=5, actor=staff, reason="opening")
    second = stock_receive(stock=StockFactory(), quantity=1, actor=staff, reason="opening")

    with pytest.raises(InsufficientStock):
        stock_apply(
            changes=[StockChange(first, Kind.ALLOCATE, 2), StockChange(second, Kind.ALLOCATE, 2)],
            actor=staff,
            reason="bundle",
        )

    first.refresh_from_db()
    assert first.allocated == 0
    assert first.movements.count() == 1


def test_adjust_sets_a_counted_value_against_the_version_read(stock, staff):
    stock = stock_adjust(stock=stock, on_hand=7, expected_version=stock.version, actor=staff, reason="count")

    assert stock.on_hand == 7
    movement = stock.movements.first()
    assert (movement.kind, movement.quantity, movement.on_hand_delta) == (Kind.ADJUST, 3, -3)
    assert_ledger_matches(stock)


def test_adjust_from_a_stale_version_is_a_conflict_and_changes_nothing(stock, staff):
    read_version = stock.version
    stock_receive(stock=stock, quantity=1, actor=staff, reason="meanwhile")

    with pytest.raises(VersionConflict):
        stock_adjust(stock=stock, on_hand=3, expected_version=read_version, actor=staff, reason="count")

    stock.refresh_from_db()
    assert stock.on_hand == 11


def test_adjust_below_allocated_units_is_refused(stock, staff):
    stock = stock_allocate(stock=stock, quantity=6, actor=staff, reason="sale")

    with pytest.raises(InsufficientStock):
        stock_adjust(stock=stock, on_hand=5, expected_version=stock.version, actor=staff, reason="count")


def test_adjust_to_the_same_value_records_nothing(stock, staff):
    stock_adjust(stock=stock, on_hand=10, expected_version=stock.version, actor=staff, reason="count")

    assert stock.movements.count() == 1


def test_threshold_update_is_optimistic(stock):
    stock_update_threshold(stock=stock, low_stock_threshold=3, expected_version=stock.version)

    with pytest.raises(VersionConflict):
        stock_update_threshold(stock=stock, low_stock_threshold=4, expected_version=stock.version - 1)

    stock.refresh_from_db()
    assert stock.low_stock_threshold == 3


def test_the_database_refuses_to_update_or_delete_ledger_rows(stock):
    movement_id = stock.movements.get().pk
    for statement in ("UPDATE inventory_stockmovement SET quantity = 99 WHERE id = %s",
                      "DELETE FROM inventory_stockmovement WHERE id = %s"):  # fmt: skip
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [movement_id])

    assert stock.movements.get().quantity == 10
