import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import redis
from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from inventory import redis_sales
from limits.breaker import redis_breaker
from orders.models import Order, Refund
from shop.models import SKU, FlashSale, Product


def product_list_active() -> QuerySet[Product]:
    """Active products with their SKUs and each SKU's stock, in three queries at most."""
    skus = SKU.objects.select_related("stock").order_by("price", "code")
    return Product.objects.active().prefetch_related(Prefetch("skus", queryset=skus))


def flash_sale_list_on_offer() -> QuerySet[FlashSale]:
    """Sales a shopper can see: live now or starting later, soonest first."""
    return (
        FlashSale.objects.on_offer()
        .with_units_sold()
        .filter(ends_at__gt=timezone.now())
        .select_related("sku__product")
        .order_by("starts_at")
    )


def flash_sale_list() -> QuerySet[FlashSale]:
    return FlashSale.objects.with_units_sold().select_related("sku__product").order_by("-starts_at", "-id")


def flash_sale_stats(*, sale: FlashSale) -> dict:
    """The staff view of a sale: the database's counts beside Redis's, and whether they agree."""
    counts = sale.orders.aggregate(
        confirmed=Count("pk", filter=~Q(status=Order.Status.CANCELLED)),
        paid=Count("pk", filter=Q(status__in=[Order.Status.PAID, Order.Status.FULFILLED])),
        cancelled=Count("pk", filter=Q(status=Order.Status.CANCELLED)),
    )
    in_stream = [
        entry
        for shard in range(sale.stock_shards)
        for entry in redis_sales.reservations_in_stream(sale.pk, shard, sale.stock_shards)
    ]
    remaining_cache = redis_sales.sale_remaining(sale.pk, sale.stock_shards)
    pending_units = sum(entry.quantity for entry in in_stream)
    open_sale = sale.status in {FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE}
    expected_cache = sale.remaining - pending_units if open_sale else None
    return {
        "quantity": sale.quantity,
        "remaining_cache": remaining_cache,
        "pending": len(in_stream),
        "orders_confirmed": counts["confirmed"],
        "orders_paid": counts["paid"],
        "orders_cancelled": counts["cancelled"],
        "units_sold": sale.units_sold,
        "consistent": remaining_cache == expected_cache if open_sale else not in_stream,
    }


@dataclass(frozen=True)
class SaleState:
    """What a shopper's page shows of a sale, and when it was read."""

    status: str  # the sale's own status
    remaining: int  # on offer now: not counting units of waves still to come
    starts_at: datetime
    ends_at: datetime
    next_wave_at: datetime | None = None

    @property
    def badge(self) -> str:
        """The word on the sale's badge: live, scheduled, next wave, sold out, ended or cancelled."""
        if self.status in {FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE}:
            now = timezone.now()
            if self.remaining <= 0:
                return "next wave" if self.next_wave_at else "sold out"
            if now >= self.ends_at:
                return FlashSale.Status.ENDED
            # The clock opens a sale; the job that marks it live may come a moment later.
            return FlashSale.Status.LIVE if now >= self.starts_at else FlashSale.Status.SCHEDULED
        return self.status

    def as_json(self) -> dict:
        return {
            "status": self.status,
            "badge": self.badge,
            "remaining": self.remaining,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "next_wave_at": self.next_wave_at.isoformat() if self.next_wave_at else None,
        }


# Pages poll a sale's state a few times a second, ten thousand shoppers at once: each process
# reads it (one row, one Redis GET) at most once per SALE_STATE_SECONDS and serves the rest
# from memory.
SALE_STATE_SECONDS = 0.5
_sale_states: dict[int, tuple[float, SaleState]] = {}


def flash_sale_state(*, sale_id: int, sale: FlashSale | None = None) -> SaleState | None:
    """The sale's state as every storefront page shows it, at most SALE_STATE_SECONDS old; None
    when there is no such sale. A caller that holds the sale's row passes it (no query)."""
    now = time.monotonic()
    cached = _sale_states.get(sale_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    if sale is None:
        sale = FlashSale.objects.filter(pk=sale_id).first()
    if sale is None:
        return None  # Not remembered: ids from outside are endless, the sales that exist are not.
    state = SaleState(
        sale.status,
        flash_sale_remaining_now(sale=sale),
        sale.starts_at,
        sale.ends_at,
        sale.next_wave_at(timezone.now()),
    )
    _sale_states[sale_id] = (now + SALE_STATE_SECONDS, state)
    return state


class SaleTerms(NamedTuple):
    """What admission needs to know of a sale that never changes once it is created."""

    shards: int
    requires_pass: bool
    starts_at: datetime
    waiting_room_opens_at: datetime | None
    let_through_per_second: int
    waiting_room_seed: str


TERMS = [
    "stock_shards", "requires_pass", "starts_at", "waiting_room_opens_at", "let_through_per_second",
    "waiting_room_seed",
]  # fmt: skip
_sale_terms: dict[int, SaleTerms] = {}


def flash_sale_terms(sale_id: int) -> SaleTerms:
    """A sale's fixed terms, read once per process, so that a purchase needs no query. Raises
    FlashSale.DoesNotExist."""
    terms = _sale_terms.get(sale_id)
    if terms is None:
        row = FlashSale.objects.values_list(*TERMS).get(pk=sale_id)
        terms = _sale_terms[sale_id] = SaleTerms(*row)
    return terms


def flash_sale_states_forget() -> None:
    """Forget what this process remembers of sales (tests start afresh)."""
    _sale_states.clear()
    _sale_terms.clear()


def flash_sale_remaining_now(*, sale: FlashSale) -> int:
    """Units on offer now: Redis's live count, or the database's when Redis cannot say, less the
    units of waves still to come."""
    remaining = sale.remaining
    if sale.status in {FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE}:
        try:
            live = redis_breaker.call(lambda: redis_sales.sale_remaining(sale.pk, sale.stock_shards))
        except redis.RedisError:
            live = None
        if live is not None:
            remaining = live
    return max(0, remaining - sale.units_held_back(timezone.now()))


OUTCOME_COLOURS = {
    "accepted": "#2e7d32",
    "sold_out": "#d7263d",
    "limit_exceeded": "#f39c12",
    "not_started": "#7f8c8d",
    "ended": "#34495e",
}


def flash_sale_activity(*, sale: FlashSale, minutes: int = 30) -> dict:
    """Admissions per minute by outcome, for the back office's chart, and the writer's lag."""
    series = redis_sales.sale_outcomes_by_minute(sale.pk, minutes, sale.stock_shards)
    tallest = max([sum(counts.values()) for _, counts in series] + [1])
    bars = []
    for index, (minute, counts) in enumerate(series):
        y = 100.0
        segments = []
        for outcome, colour in OUTCOME_COLOURS.items():
            height = 100.0 * counts.get(outcome, 0) / tallest
            if height:
                y -= height
                segments.append({"y": round(y, 2), "height": round(height, 2), "colour": colour,
                                 "title": f"{outcome}: {counts[outcome]}"})  # fmt: skip
        bars.append({"x": index * 10, "minute": minute, "segments": segments})
    totals: dict[str, int] = {}
    for _, counts in series[-5:]:
        for outcome, count in counts.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return {
        "bars": bars,
        "width": minutes * 10,
        "tallest": tallest,
        "per_minute_last_5": {outcome: round(count / 5, 1) for outcome, count in sorted(totals.items())},
        "writer_lag_seconds": redis_sales.oldest_reservation_age_seconds(sale.pk, sale.stock_shards),
        "legend": OUTCOME_COLOURS,
    }


@dataclass(frozen=True)
class BackOfficeSummary:
    live_sales: list[FlashSale]
    upcoming_sales: list[FlashSale]
    orders_awaiting_payment: int
    revenue_today: Decimal


def back_office_summary(*, now: datetime) -> BackOfficeSummary:
    """The admin index's dashboard: sales live and coming, orders waiting to be paid, and the
    money taken today (orders paid since midnight, local time, less today's refunds)."""
    on_offer = flash_sale_list_on_offer()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    paid = Order.objects.filter(
        transitions__to_status=Order.Status.PAID, transitions__created_at__gte=midnight
    ).aggregate(total=Sum("total"))["total"] or Decimal("0")
    refunded = Refund.objects.filter(created_at__gte=midnight).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return BackOfficeSummary(
        live_sales=list(on_offer.filter(starts_at__lte=now)[:10]),
        upcoming_sales=list(on_offer.filter(starts_at__gt=now)[:5]),
        orders_awaiting_payment=Order.objects.filter(status=Order.Status.PENDING_PAYMENT).count(),
        revenue_today=paid - refunded,
    )


def flash_sale_report(*, sale: FlashSale) -> dict:
    """A sale's account for the people who ran it: units offered, sold, paid, cancelled and
    refunded, revenue (paid, less refunds), how long it took to sell out, the admission answers
    by outcome (live from Redis, kept on the sale once it ended) and the share of attempts that
    ended paid."""
    units = sale.orders.aggregate(
        sold=Sum("quantity", filter=~Q(status=Order.Status.CANCELLED)),
        paid=Sum("quantity", filter=Q(status__in=[Order.Status.PAID, Order.Status.FULFILLED])),
        cancelled=Sum("quantity", filter=Q(status=Order.Status.CANCELLED)),
        refunded=Sum("quantity", filter=Q(status=Order.Status.REFUNDED)),
        revenue=Sum("total", filter=Q(status__in=[Order.Status.PAID, Order.Status.FULFILLED])),
        paid_orders=Count("pk", filter=Q(status__in=[Order.Status.PAID, Order.Status.FULFILLED])),
        last_unit_at=Max("created_at", filter=~Q(status=Order.Status.CANCELLED)),
    )
    admissions = (
        sale.admissions
        if sale.status == FlashSale.Status.ENDED
        else redis_sales.sale_outcome_totals(sale.pk, sale.stock_shards)
    )
    attempts = sum(admissions.values())
    sold = units["sold"] or 0
    sold_out_after = units["last_unit_at"] - sale.starts_at if sold >= sale.quantity and units["last_unit_at"] else None
    return {
        "units offered": sale.quantity,
        "units sold": sold,
        "units paid": units["paid"] or 0,
        "units cancelled": units["cancelled"] or 0,
        "units refunded": units["refunded"] or 0,
        "revenue": units["revenue"] or Decimal("0"),
        "sold out after": sold_out_after,
        "admissions": admissions,
        "attempts": attempts,
        "attempts that ended paid": f"{100 * units['paid_orders'] / attempts:.1f}%" if attempts else "-",
    }
