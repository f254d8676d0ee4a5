from django.db.models import Sum

from inventory.models import Stock


def assert_ledger_matches(stock: Stock) -> None:
    """Invariant 2 of design.md: the ledger sums to the stock row."""
    stock.refresh_from_db()
    sums = stock.movements.aggregate(on_hand=Sum("on_hand_delta"), allocated=Sum("allocated_delta"))
    assert (sums["on_hand"] or 0, sums["allocated"] or 0) == (stock.on_hand, stock.allocated)
    assert stock.on_hand >= 0
    assert 0 <= stock.allocated <= stock.on_hand
