import pytest
from django.db import IntegrityError, connection, transaction

from inventory.services import stock_receive
from tests.factories import StockFactory

pytestmark = pytest.mark.django_db


def raw_update(stock_id: int, **columns: int) -> None:
    assignments = ", ".join(f"{column} = %s" for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE inventory_stock SET {assignments} WHERE id = %s", [*columns.values(), stock_id])  # noqa: S608


@pytest.mark.parametrize(
    "columns",
    [
        {"on_hand": -1},
        {"allocated": -1},
        {"allocated": 11},
        {"on_hand": 3, "allocated": 4},
    ],
)
def test_check_constraints_reject_impossible_stock_even_from_raw_sql(columns):
    # Given a SKU with 10 units on hand
    stock = StockFactory()
    stock_receive(stock=stock, quantity=10, actor=None, reason="opening")

    # When SQL that bypasses the ORM tries an impossible balance, the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_update(stock.pk, **columns)

    # And nothing changed
    stock.refresh_from_db()
    assert (stock.on_hand, stock.allocated) == (10, 0)


def test_check_constraints_allow_a_fully_allocated_stock():
    stock = StockFactory()
    stock_receive(stock=stock, quantity=10, actor=None, reason="opening")

    raw_update(stock.pk, allocated=10)

    stock.refresh_from_db()
    assert stock.available == 0
