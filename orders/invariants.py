"""The invariants of design.md, checked against PostgreSQL and Redis as they are now."""

from collections.abc import Collection
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet, Sum

from inventory import redis_sales
from inventory.models import Stock
from orders.models import FailedReservation, Order
from shop.models import FlashSale


@dataclass
class Report:
    violations: list[dict] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def violation(self, invariant: str, **details) -> None:
        self.violations.append({"invariant": invariant, **details})

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict:
        return {"ok": self.ok, "checked": self.checked, "violations": self.violations}


def check_invariants(sale_ids: Collection[int] | None = None) -> Report:
    """Every invariant, for every sale and stock, or for these sales and their SKUs' stock."""
    report = Report()
    sales = FlashSale.objects.select_related("sku")
    stocks = Stock.objects.all()
    if sale_ids is not None:
        sales = sales.filter(pk__in=sale_ids)
        stocks = stocks.filter(sku__flash_sales__in=sale_ids).distinct()
    sales = list(sales)
    report.checked = {"sales": len(sales), "stocks": stocks.count()}
    for sale in sales:
        _check_sale(report, sale)
    _check_stock(report, sales, stocks)
    _check_reservations(report, sale_ids)
    return report


def _check_sale(report: Report, sale: FlashSale) -> None:
    units = sale.orders.units()
    # 1. No oversell, and the counter the writer guards tells the truth.
    if units > sale.quantity:
        report.violation("no_oversell", sale=sale.pk, units_in_orders=units, quantity=sale.quantity)
    _check_shards(report, sale)
    # 4. Per-user limit.
    for user_id, units in sale.orders.units_by_user().items():
        if units > sale.per_user_limit:
            report.violation("per_user_limit", sale=sale.pk, user=user_id, units=units, limit=sale.per_user_limit)
    # 3. Cache agreement, counting reservations still on their way to the database.
    if sale.status in FlashSale.OPEN_STATUSES:
        _check_cache(report, sale)


def _check_shards(report: Report, sale: FlashSale) -> None:
    """The counters the writers guard tell the truth, shard by shard, and the shards' allotments
    share out exactly the sale's quantity."""
    rows = list(sale.shards.order_by("index"))
    if len(rows) != sale.stock_shards or sum(row.allotment for row in rows) != sale.quantity:
        report.violation("shard_allotments", sale=sale.pk, shards=len(rows), allotments=[row.allotment for row in rows])
    for row in rows:
        units = sale.orders.in_shard(shard=row.index, shards=sale.stock_shards).units()
        if units != row.units_sold:
            report.violation(
                "sale_counter", sale=sale.pk, shard=row.index, units_in_orders=units, units_sold=row.units_sold
            )


def _check_cache(report: Report, sale: FlashSale) -> None:
    """Each loaded shard offers its allotment less what its shoppers hold and have on their way;
    the shards' allotments in Redis share out the sale's quantity (a shard Redis lost offers
    nothing until the next preheat rebuilds it); no unit is on offer before its wave opens by
    Redis's clock; and Redis's terms are the database's."""
    shards = sale.stock_shards
    states = redis_sales.sale_shard_states(sale.pk, shards)
    if not any(states):
        return
    # After the states: a wave that opened in between shows as released, never as early.
    now = redis_sales.redis_now()
    in_flight = {}
    for row in sale.shards.all():
        entries = redis_sales.reservations_in_stream(sale.pk, row.index, shards)
        settled = sale.reservations_settled(entry.reservation_id for entry in entries)
        in_flight[row.index] = redis_sales.units_in_flight(entries, settled)
    for row in sale.shards.all():
        state = states[row.index]
        if state is None:
            continue
        expected = state.allotment - row.units_sold - in_flight[row.index]
        if state.remaining != expected:
            report.violation(
                "cache_agreement",
                sale=sale.pk,
                shard=row.index,
                redis_remaining=state.remaining,
                expected=expected,
                in_flight=in_flight[row.index],
            )
    allotments = [state.allotment for state in states if state]
    loaded_all = all(states)
    if any(not 0 <= allotment <= sale.quantity for allotment in allotments) or (
        sum(allotments) != sale.quantity if loaded_all else sum(allotments) > sale.quantity
    ):
        report.violation("cache_allotments", sale=sale.pk, quantity=sale.quantity, redis_allotments=allotments)
    # 6. Waves: what is taken (sold, or on its way) and what is on offer fit in what is released.
    taken = sale.units_sold + sum(in_flight.values())
    on_offer = sum(max(state.on_offer, 0) for state in states if state)
    if taken + on_offer > sale.units_released(now):
        report.violation(
            "waves", sale=sale.pk, released=sale.units_released(now), taken=taken, on_offer=on_offer, at=now.isoformat()
        )
    _check_terms(report, sale, loaded=[index for index, state in enumerate(states) if state])


def _check_terms(report: Report, sale: FlashSale, *, loaded: list[int]) -> None:
    """7. Terms agreement: every loaded shard's per-user limit, end and blocked accounts (the
    inactive accounts at home there) are the database's."""
    shards = sale.stock_shards
    inactive = set(get_user_model().objects.filter(is_active=False).values_list("pk", flat=True))
    for shard in loaded:
        terms = redis_sales.sale_shard_terms(sale.pk, shard, shards)
        blocked = {user for user in inactive if redis_sales.home_shard(user, shards) == shard}
        expected = redis_sales.ShardTerms.of(limit=sale.per_user_limit, ends_at=sale.ends_at, blocked=blocked)
        if terms != expected:
            report.violation(
                "terms_agreement",
                sale=sale.pk,
                shard=shard,
                redis=terms.as_dict(),
                database=expected.as_dict(),
            )


def _check_stock(report: Report, sales: list[FlashSale], stocks: QuerySet[Stock]) -> None:
    expected_allocated: dict[int, int] = {}
    for sale in sales:
        tally = sale.orders.tally()
        is_open = sale.status in FlashSale.OPEN_STATUSES
        held = sale.quantity - tally["units_charged"] if is_open else tally["units_unpaid"]
        expected_allocated[sale.sku_id] = expected_allocated.get(sale.sku_id, 0) + held
    stocks = stocks.annotate(
        on_hand_sum=Sum("movements__on_hand_delta"), allocated_sum=Sum("movements__allocated_delta")
    )
    for stock in stocks:
        # 1. Never negative (the CHECK constraints say so too).
        if stock.on_hand < 0 or not 0 <= stock.allocated <= stock.on_hand:
            report.violation("stock_bounds", sku=stock.sku_id, on_hand=stock.on_hand, allocated=stock.allocated)
        # 2. Ledger truth.
        if (stock.on_hand_sum or 0, stock.allocated_sum or 0) != (stock.on_hand, stock.allocated):
            report.violation(
                "ledger_truth",
                sku=stock.sku_id,
                on_hand=stock.on_hand,
                allocated=stock.allocated,
                ledger_on_hand=stock.on_hand_sum or 0,
                ledger_allocated=stock.allocated_sum or 0,
            )
        # Units held for sales and unpaid orders are exactly what is allocated.
        if stock.allocated != expected_allocated.get(stock.sku_id, 0):
            report.violation(
                "allocation",
                sku=stock.sku_id,
                allocated=stock.allocated,
                held_for_sales_and_orders=expected_allocated.get(stock.sku_id, 0),
            )


def _check_reservations(report: Report, sale_ids: Collection[int] | None) -> None:
    orders = Order.objects.all() if sale_ids is None else Order.objects.filter(flash_sale__in=sale_ids)
    # 5. Nothing doubled: one reservation, one outcome.
    doubled = orders.values("reservation_id").annotate(n=Count("pk")).filter(n__gt=1)
    both = orders.filter(reservation_id__in=FailedReservation.objects.values("reservation_id")).values_list(
        "reservation_id", flat=True
    )
    for rid in [row["reservation_id"] for row in doubled] + list(both):
        report.violation("one_outcome_per_reservation", reservation=rid)
    # 5. Nothing lost: a reservation Redis still calls pending is in the stream or the database.
    for keys in redis_sales.sales_with_streams():
        if sale_ids is not None and keys.sale_id not in sale_ids:
            continue
        shard = (keys.sale_id, keys.shard, keys.shards)
        in_stream = {entry.reservation_id for entry in redis_sales.reservations_in_stream(*shard)}
        pending = redis_sales.reservations_pending(*shard)
        unaccounted = pending - in_stream
        if unaccounted:
            known = set(Order.objects.filter(reservation_id__in=unaccounted).values_list("reservation_id", flat=True))
            known |= set(
                FailedReservation.objects.filter(reservation_id__in=unaccounted).values_list(
                    "reservation_id", flat=True
                )
            )
            for rid in sorted(unaccounted - known):
                report.violation("reservation_lost", sale=keys.sale_id, shard=keys.shard, reservation=rid)
