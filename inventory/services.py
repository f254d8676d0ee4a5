"""The only code that changes stock. Every change locks the Stock row, bumps its version and
writes one StockMovement with the resulting balances."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from inventory.exceptions import InsufficientStock, InvalidQuantity
from inventory.models import Stock, StockMovement
from shop.models import SKU


def stock_get_or_create(*, sku: SKU, low_stock_threshold: int | None = None) -> Stock:
    """The Stock row of `sku`, created empty (no movement: nothing changed) when missing."""
    defaults = {} if low_stock_threshold is None else {"low_stock_threshold": low_stock_threshold}
    stock, _ = Stock.objects.get_or_create(sku=sku, defaults=defaults)
    return stock


def _stock_move(
    *,
    stock: Stock,
    kind: StockMovement.Kind,
    quantity: int,
    on_hand_delta: int,
    allocated_delta: int,
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str,
) -> Stock:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise InvalidQuantity()
    with transaction.atomic():
        locked = Stock.objects.select_for_update().get(pk=stock.pk)
        on_hand = locked.on_hand + on_hand_delta
        allocated = locked.allocated + allocated_delta
        if on_hand < 0 or allocated < 0 or allocated > on_hand:
            raise InsufficientStock(f"Only {locked.available} of {locked.on_hand} units on hand are available.")
        Stock.objects.filter(pk=locked.pk).update(on_hand=on_hand, allocated=allocated, version=F("version") + 1)
        StockMovement.objects.create(
            stock=locked,
            kind=kind,
            quantity=quantity,
            on_hand_delta=on_hand_delta,
            allocated_delta=allocated_delta,
            on_hand_after=on_hand,
            allocated_after=allocated,
            actor=actor,
            reason=reason,
            reference=reference,
        )
    stock.refresh_from_db()
    return stock


def stock_receive(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Add `quantity` units to on hand (goods in)."""
    return _stock_move(
        stock=stock,
        kind=StockMovement.Kind.IN,
        quantity=quantity,
        on_hand_delta=quantity,
        allocated_delta=0,
        actor=actor,
        reason=reason,
        reference=reference,
    )


def stock_allocate(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Hold `quantity` available units (for a sale or an order). Raises InsufficientStock."""
    return _stock_move(
        stock=stock,
        kind=StockMovement.Kind.ALLOCATE,
        quantity=quantity,
        on_hand_delta=0,
        allocated_delta=quantity,
        actor=actor,
        reason=reason,
        reference=reference,
    )
