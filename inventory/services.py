"""The only code that changes stock.

Every change runs in one transaction that locks the Stock rows it touches (in ascending id
order, so two transactions never deadlock), checks the new balances, bumps `version`, writes
one StockMovement per change with the resulting balances, and opens or closes the low-stock
alert. The database CHECK constraints back up the checks made here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from inventory.exceptions import InsufficientStock, InvalidQuantity, VersionConflict
from inventory.models import Stock, StockAlert, StockMovement

if TYPE_CHECKING:
    from shop.models import SKU

Kind = StockMovement.Kind


@dataclass(frozen=True)
class StockChange:
    """One line of a stock transaction: `quantity` units of `kind` on `stock`."""

    stock: Stock
    kind: Kind
    quantity: int

    @property
    def deltas(self) -> tuple[int, int]:
        """(on_hand, allocated) change for the kinds whose direction is fixed."""
        q = self.quantity
        return {
            Kind.IN: (q, 0),
            Kind.OUT: (-q, 0),
            Kind.ALLOCATE: (0, q),
            Kind.RELEASE: (0, -q),
            Kind.SELL: (-q, -q),
            Kind.RETURN: (q, 0),
        }[self.kind]


def stock_get_or_create(*, sku: "SKU", low_stock_threshold: int | None = None) -> Stock:
    """The Stock row of `sku`, created empty (no movement: nothing changed) when missing."""
    defaults = {} if low_stock_threshold is None else {"low_stock_threshold": low_stock_threshold}
    stock, _ = Stock.objects.get_or_create(sku=sku, defaults=defaults)
    return stock


def validate_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidQuantity()


def _lock(stocks: Sequence[Stock]) -> dict[int, Stock]:
    # Lock in id order so two transactions touching the same rows cannot deadlock.
    ids = sorted({stock.pk for stock in stocks})
    return {stock.pk: stock for stock in Stock.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _record(
    *,
    stock: Stock,
    kind: Kind,
    quantity: int,
    on_hand_delta: int,
    allocated_delta: int,
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str,
) -> StockMovement:
    """Apply one change to a locked row in memory and build its ledger row."""
    on_hand = stock.on_hand + on_hand_delta
    allocated = stock.allocated + allocated_delta
    if on_hand < 0 or allocated < 0 or allocated > on_hand:
        raise InsufficientStock(
            f"{stock.sku.code}: cannot {Kind(kind).label.lower()} {quantity}; "
            f"{stock.on_hand} on hand, {stock.allocated} allocated, {stock.available} available."
        )
    stock.on_hand, stock.allocated = on_hand, allocated
    return StockMovement(
        stock=stock,
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


def _save(stocks: Sequence[Stock], movements: list[StockMovement]) -> None:
    for stock in stocks:
        Stock.objects.filter(pk=stock.pk).update(
            on_hand=stock.on_hand, allocated=stock.allocated, version=F("version") + 1, updated_at=timezone.now()
        )
        stock.version += 1
    StockMovement.objects.bulk_create(movements)
    for stock in stocks:
        stock_alert_sync(stock=stock)


def _check_version(stock: Stock, expected_version: int | None) -> None:
    if expected_version is not None and stock.version != expected_version:
        raise VersionConflict(
            f"{stock.sku.code} is at version {stock.version}, not {expected_version}: "
            "it changed since you read it. Reload and try again."
        )


def stock_apply(
    *,
    changes: Sequence[StockChange],
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str = "",
    expected_versions: dict[int, int] | None = None,
) -> list[Stock]:
    """Apply several changes, possibly to several SKUs, all or nothing.

    Raises InvalidQuantity for a quantity that is not a positive integer,
    InsufficientStock when a change would leave a row out of bounds, and VersionConflict
    when a row is not at the version given for its id in `expected_versions` (a person's
    form read it earlier); nothing is written then. Returns the changed rows, fresh, in id
    order.
    """
    for change in changes:
        validate_quantity(change.quantity)
    with transaction.atomic():
        locked = _lock([change.stock for change in changes])
        for stock_id, expected_version in (expected_versions or {}).items():
            _check_version(locked[stock_id], expected_version)
        movements = []
        for change in changes:
            on_hand_delta, allocated_delta = change.deltas
            movements.append(
                _record(
                    stock=locked[change.stock.pk],
                    kind=change.kind,
                    quantity=change.quantity,
                    on_hand_delta=on_hand_delta,
                    allocated_delta=allocated_delta,
                    actor=actor,
                    reason=reason,
                    reference=reference,
                )
            )
        _save(list(locked.values()), movements)
    return list(locked.values())


def _stock_apply_one(
    kind: Kind,
    *,
    stock: Stock,
    quantity: int,
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str,
    expected_version: int | None = None,
) -> Stock:
    [changed] = stock_apply(
        changes=[StockChange(stock, kind, quantity)],
        actor=actor,
        reason=reason,
        reference=reference,
        expected_versions=None if expected_version is None else {stock.pk: expected_version},
    )
    return changed


def stock_receive(
    *,
    stock: Stock,
    quantity: int,
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str = "",
    expected_version: int | None = None,
) -> Stock:
    """Goods in: `quantity` more units on hand. `expected_version` as in stock_apply."""
    return _stock_apply_one(
        Kind.IN,
        stock=stock,
        quantity=quantity,
        actor=actor,
        reason=reason,
        reference=reference,
        expected_version=expected_version,
    )


def stock_issue(
    *,
    stock: Stock,
    quantity: int,
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str = "",
    expected_version: int | None = None,
) -> Stock:
    """Goods out (damaged, lost, sent elsewhere). Only available units can go: raises InsufficientStock."""
    return _stock_apply_one(
        Kind.OUT,
        stock=stock,
        quantity=quantity,
        actor=actor,
        reason=reason,
        reference=reference,
        expected_version=expected_version,
    )


def stock_allocate(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Hold available units for a sale or an order. Raises InsufficientStock."""
    return _stock_apply_one(
        Kind.ALLOCATE, stock=stock, quantity=quantity, actor=actor, reason=reason, reference=reference
    )


def stock_release(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Give held units back to available stock. Raises InsufficientStock if fewer are held."""
    return _stock_apply_one(
        Kind.RELEASE, stock=stock, quantity=quantity, actor=actor, reason=reason, reference=reference
    )


def stock_sell(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Held units leave as sold: both on hand and allocated go down."""
    return _stock_apply_one(Kind.SELL, stock=stock, quantity=quantity, actor=actor, reason=reason, reference=reference)


def stock_return(
    *, stock: Stock, quantity: int, actor: AbstractBaseUser | None, reason: str, reference: str = ""
) -> Stock:
    """Sold units come back (a refund): on hand goes up."""
    return _stock_apply_one(
        Kind.RETURN, stock=stock, quantity=quantity, actor=actor, reason=reason, reference=reference
    )


def stock_adjust(
    *, stock: Stock, on_hand: int, expected_version: int, actor: AbstractBaseUser | None, reason: str
) -> Stock:
    """Set on hand to a counted value, if the row is still at the version the counter read.

    Raises VersionConflict when someone changed the stock since (nothing is written), and
    InsufficientStock when the count is below the allocated units. A count equal to the
    current value changes nothing and records nothing.
    """
    if isinstance(on_hand, bool) or not isinstance(on_hand, int) or on_hand < 0:
        raise InvalidQuantity("The counted quantity must be a whole number, zero or more.")
    with transaction.atomic():
        locked = _lock([stock])[stock.pk]
        _check_version(locked, expected_version)
        delta = on_hand - locked.on_hand
        if delta == 0:
            return locked
        movement = _record(
            stock=locked,
            kind=Kind.ADJUST,
            quantity=abs(delta),
            on_hand_delta=delta,
            allocated_delta=0,
            actor=actor,
            reason=reason,
            reference="",
        )
        _save([locked], [movement])
    return locked


def stock_update_threshold(*, stock: Stock, low_stock_threshold: int, expected_version: int) -> Stock:
    """Change the low-stock threshold, if the row is still at `expected_version`.

    Raises VersionConflict otherwise. The alert opens or closes to match the new threshold.
    """
    with transaction.atomic():
        updated = Stock.objects.filter(pk=stock.pk, version=expected_version).update(
            low_stock_threshold=low_stock_threshold, version=F("version") + 1, updated_at=timezone.now()
        )
        if not updated:
            raise VersionConflict()
        stock.refresh_from_db()
        stock_alert_sync(stock=stock)
    return stock


# --- Low-stock alerts ----------------------------------------------------------------------


def stock_alert_sync(*, stock: Stock) -> StockAlert | None:
    """Open the SKU's alert when available stock is at or below the threshold, else close it.

    Returns the alert this call opened, if any. At most one alert is open per stock: the
    partial unique constraint decides between concurrent openers, and only the winner
    schedules the staff notification.
    """
    if stock.available > stock.low_stock_threshold:
        StockAlert.objects.open().filter(stock=stock).update(closed_at=timezone.now())
        return None
    try:
        with transaction.atomic():
            alert = StockAlert.objects.create(
                stock=stock, available_at_open=stock.available, threshold_at_open=stock.low_stock_threshold
            )
    except IntegrityError:
        return None  # Already open.
    from inventory.tasks import stock_alert_notify  # Here, not at the top: tasks import this module.

    # Robust: the stock change has committed; a broker outage must not turn it into an error.
    transaction.on_commit(lambda: stock_alert_notify.delay(alert.pk), robust=True)
    return alert


def stock_alert_acknowledge(*, alert: StockAlert, actor: AbstractBaseUser) -> StockAlert:
    """Mark an alert as seen by `actor`. Acknowledging twice keeps the first acknowledgement."""
    StockAlert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=actor
    )
    alert.refresh_from_db()
    return alert


def stock_alert_claim_notification(*, alert_id: int) -> bool:
    """True for exactly one caller per alert: the one that should send the notification."""
    return bool(StockAlert.objects.filter(pk=alert_id, notified_at__isnull=True).update(notified_at=timezone.now()))


def stock_alert_unclaim_notification(*, alert_id: int) -> None:
    """Give the claim back after a failed send, so that a retry sends it."""
    StockAlert.objects.filter(pk=alert_id).update(notified_at=None)
