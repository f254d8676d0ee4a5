import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import redis
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from core.breaker import redis_breaker
from inventory import redis_sales
from inventory.redis_sales import Outcome
from shop.models import SKU, FlashSale, Product


def product_list_active() -> QuerySet[Product]:
    """Active products with their SKUs and each SKU's stock (for the API; the storefront shows
    no stock counts: units are sold in flash sales), in three queries at most."""
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
    tally = sale.orders.tally()
    in_stream = [
        entry
        for shard in range(sale.stock_shards)
        for entry in redis_sales.reservations_in_stream(sale.pk, shard, sale.stock_shards)
    ]
    remaining_cache = redis_sales.sale_remaining(sale.pk, sale.stock_shards)
    pending_units = sum(entry.quantity for entry in in_stream)
    open_sale = sale.status in FlashSale.OPEN_STATUSES
    expected_cache = sale.remaining - pending_units if open_sale else None
    return {
        "quantity": sale.quantity,
        "remaining_cache": remaining_cache,
        "pending": len(in_stream),
        "orders_confirmed": tally["orders"],
        "orders_paid": tally["orders_paid"],
        "orders_cancelled": tally["orders_cancelled"],
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
    per_user_limit: int = 0
    shards: int = 1
    to_come: int = 0  # units of waves still to come

    @property
    def badge(self) -> str:
        """The word on the sale's badge: live, scheduled, next wave, sold out, ended or cancelled."""
        if self.status in FlashSale.OPEN_STATUSES:
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
            "to_come": self.to_come,
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
    at = timezone.now()
    state = SaleState(
        sale.status,
        flash_sale_remaining_now(sale=sale),
        sale.starts_at,
        sale.ends_at,
        sale.next_wave_at(at),
        sale.per_user_limit,
        sale.stock_shards,
        sale.units_held_back(at),
    )
    _sale_states[sale_id] = (now + SALE_STATE_SECONDS, state)
    return state


def flash_sale_units_held(*, state: SaleState, sale_id: int, user_id: int) -> int | None:
    """The units the shopper holds in the sale against its limit, as Redis counts them (one read);
    None when Redis cannot say."""
    try:
        return redis_breaker.call(lambda: redis_sales.sale_units_held(sale_id, user_id, state.shards))
    except redis.RedisError:
        return None


def flash_sale_states_forget() -> None:
    """Forget the sales' states this process remembers (tests start afresh)."""
    _sale_states.clear()


def flash_sale_remaining_now(*, sale: FlashSale) -> int:
    """Units on offer now: Redis's live count, or the database's when Redis cannot say, less the
    units of waves still to come."""
    remaining = sale.remaining
    if sale.status in FlashSale.OPEN_STATUSES:
        try:
            live = redis_breaker.call(lambda: redis_sales.sale_remaining(sale.pk, sale.stock_shards))
        except redis.RedisError:
            live = None
        if live is not None:
            remaining = live
    return max(0, remaining - sale.units_held_back(timezone.now()))


# The back office chart's colour of each answer admit.lua counts (Outcome's label names it).
OUTCOME_COLOURS = {
    Outcome.ACCEPTED: "#2e7d32",
    Outcome.SOLD_OUT: "#d7263d",
    Outcome.LIMIT_EXCEEDED: "#f39c12",
    Outcome.NOT_STARTED: "#7f8c8d",
    Outcome.ENDED: "#34495e",
    Outcome.BLOCKED: "#8e44ad",
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
                                 "title": f"{outcome.label}: {counts[outcome]}"})  # fmt: skip
        bars.append({"x": index * 10, "minute": minute, "segments": segments})
    totals: dict[str, int] = {}
    for _, counts in series[-5:]:
        for outcome, count in counts.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return {
        "bars": bars,
        "width": minutes * 10,
        "tallest": tallest,
        "per_minute_last_5": {
            Outcome.label_of(outcome): round(count / 5, 1) for outcome, count in sorted(totals.items())
        },
        "writer_lag_seconds": redis_sales.oldest_reservation_age_seconds(sale.pk, sale.stock_shards),
        "legend": {outcome.label: colour for outcome, colour in OUTCOME_COLOURS.items()},
    }


def flash_sale_report(*, sale: FlashSale) -> dict:
    """A sale's account for the people who ran it: units offered, sold, paid, cancelled and
    refunded, revenue (paid, less refunds), how long it took to sell out, the admission answers
    by outcome (live from Redis, kept on the sale once it ended) and the share of attempts that
    ended paid."""
    tally = sale.orders.tally()
    admissions = (
        sale.admissions
        if sale.status == FlashSale.Status.ENDED
        else redis_sales.sale_outcome_totals(sale.pk, sale.stock_shards)
    )
    attempts = sum(admissions.values())
    sold = tally["units"]
    sold_out_after = tally["last_unit_at"] - sale.starts_at if sold >= sale.quantity and tally["last_unit_at"] else None
    return {
        "units offered": sale.quantity,
        "units sold": sold,
        "units paid": tally["units_paid"],
        "units cancelled": tally["units_cancelled"],
        "units refunded": tally["units_refunded"],
        "revenue": tally["revenue"] or Decimal("0"),
        "sold out after": sold_out_after,
        "admissions": {Outcome.label_of(outcome): count for outcome, count in admissions.items()},
        "attempts": attempts,
        "attempts that ended paid": f"{100 * tally['orders_paid'] / attempts:.1f}%" if attempts else "-",
    }
