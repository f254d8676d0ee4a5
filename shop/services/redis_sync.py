"""A sale in Redis, kept to the database: preheated (a lost shard rebuilt under the move lock
and every shard row), reconciled (drifts repaired and e-mailed), and told of blocked accounts.
"""

import logging
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import staff_emails_with
from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate_reopen
from shop.models import FlashSale, SaleDrift, Wave
from shop.services.shards import allotments_share, even_shares, flash_sale_shard_waves, shards_locked

logger = logging.getLogger(__name__)


def flash_sale_preheat(*, sale: FlashSale) -> int | None:
    """Load the sale into Redis from the database; safe to repeat. Returns Redis's remaining.

    A sale already loaded keeps its counters (reservations in flight live only there) and
    gets its terms refreshed; a sale Redis lost is rebuilt from the database, each stock shard
    on its own (a shard rebuilt beside loaded ones gets what they do not hold). The sale's row
    is locked meanwhile, so a cancel or an end cannot commit between the status read here and
    the status written to Redis (and the load script never reopens a closed sale). A closed
    sale is not loaded: 0. Returns None, doing nothing, while another process preheats it, or
    while a mover holds the sale's move lock past MOVE_LOCK_WAIT_MS.
    """
    with redis_sales.sale_lock(sale.pk, "preheat") as lock:
        if lock is None:
            return None
        with transaction.atomic():
            locked = FlashSale.objects.locked().get(pk=sale.pk)
            if locked.status not in FlashSale.OPEN_STATUSES:
                return 0
            terms = {
                "sale_id": locked.pk,
                "starts_at": locked.starts_at,
                "ends_at": locked.ends_at,
                "per_user_limit": locked.per_user_limit,
                "status": locked.status,
                "shards": locked.stock_shards,
                "version": locked.version,
            }
            waves = {shard: flash_sale_shard_waves(sale=locked, shard=shard) for shard in range(locked.stock_shards)}
            remaining = {
                shard: redis_sales.sale_load(**terms, shard=shard, counters=None, waves=waves[shard])
                for shard in range(locked.stock_shards)
            }
            missing = [shard for shard, left in remaining.items() if left is None]
            if missing:
                rebuilt = _shards_rebuild(locked, missing=missing, terms=terms, waves=waves)
                if rebuilt is None:
                    return None
                remaining.update(rebuilt)
    sale_gate_reopen(sale.pk)
    return sum(remaining.values())


def _shards_rebuild(
    sale: FlashSale, *, missing: list[int], terms: dict, waves: dict[int, list[Wave]]
) -> dict[int, int] | None:
    """Load the `missing` shards of a sale (whose row the caller has locked) from the database,
    under the sale's move lock, its token raised in every shard before they are read (so a mover
    that stalled past its lock moves nothing into what this counts), and with every shard row
    locked (so a writer's batch being committed is counted: its orders are read after it).
    Returns each shard's remaining, or None when the move lock could not be had."""
    with redis_sales.sale_move_lock(sale.pk, wait_ms=redis_sales.MOVE_LOCK_WAIT_MS) as moves:
        if moves is None:
            return None
        shards_locked(sale.pk)
        states = redis_sales.sale_shard_states(sale.pk, sale.stock_shards, fence=moves.fence)
        now = redis_sales.redis_now()
        counters = _sale_counters(sale, missing=missing, states=states, fence=moves.fence, now=now, waves=waves)
        return {
            shard: redis_sales.sale_load(**terms, shard=shard, counters=counters[shard], waves=waves[shard])
            for shard in missing
        }


def _sale_counters(
    sale: FlashSale,
    *,
    missing: list[int],
    states: list[redis_sales.ShardState | None],
    fence: int,
    now: datetime,
    waves: dict[int, list[Wave]],
) -> dict[int, redis_sales.SaleCounters]:
    """Counters to load the `missing` shards of a sale with, from the database. Each gets what
    its shoppers bought, and of what the loaded shards do not hold, first the units its waves
    still hold back at `now` (Redis's clock), then an even share of the rest: so a rebuilt shard
    offers no unit before its wave."""
    shards = sale.stock_shards
    sold = dict.fromkeys(range(shards), 0)
    for user_id, units in sale.orders.units_by_user().items():
        sold[redis_sales.home_shard(user_id, shards)] += units
    held_elsewhere = sum(state.allotment for state in states if state is not None)
    unsold = max(sale.quantity - held_elsewhere - sum(sold[shard] for shard in missing), 0)
    held_back = {}
    for shard in missing:
        held_back[shard] = min(unsold, sum(wave.units for wave in waves[shard] if wave.at > now))
        unsold -= held_back[shard]
    blocked = list(User.objects.filter(is_active=False).values_list("pk", flat=True))
    counters = {}
    for shard, share in zip(missing, even_shares(unsold, len(missing)), strict=True):
        left = held_back[shard] + share
        counters[shard] = redis_sales.SaleCounters(
            remaining=left,
            allotment=sold[shard] + left,
            held_by_user=sale.orders.units_by_user(shard=shard, shards=shards),
            admitted=sale.reservation_units(shard=shard, shards=shards),
            answered_users=sorted(sale.reservation_users(shard=shard, shards=shards)),
            blocked_users=[user for user in blocked if redis_sales.home_shard(user, shards) == shard],
            version=sale.version,
            fence=fence,
        )
    return counters


def flash_sales_block_account(*, user_id: int, active: bool, **signal) -> None:
    """Refuse a deactivated account's purchases in every sale on offer from its next attempt
    (or allow them again once it is active): the receiver of accounts' account_activity_changed.
    Sales loaded later read the accounts themselves. If Redis is unreachable, the order writer
    still refuses a deactivated account's reservations."""
    sales = dict(FlashSale.objects.on_offer().values_list("pk", "stock_shards"))
    try:
        redis_sales.sales_block_user(sales=sales, user_id=user_id, blocked=not active)
    except redis.RedisError:
        logger.warning("could not tell Redis that account %s is %s", user_id, "allowed" if active else "blocked")


def flash_sale_should_be_loaded(*, sale: FlashSale, now: datetime) -> bool:
    lead = timedelta(seconds=settings.FLASH_SALE_PREHEAT_LEAD)
    return sale.status in FlashSale.OPEN_STATUSES and sale.starts_at - lead <= now


def flash_sale_reconcile(*, sale: FlashSale) -> redis_sales.Reconciliation | None:
    """Compare the sale's Redis counters with the database and repair them toward it.

    Holds the sale's row lock and its shards' meanwhile, so no writer commits in between, and
    the fenced lock under which Redis moves units between shards, its token raised in every
    shard before it reads them, so none moves and no stalled mover moves afterwards; each
    shard's comparison runs as one Lua script, so no admission interleaves. Each shard keeps the
    units Redis allotted it where it can (`allotments_share`): units a mover lost on its way or
    an edit added go to shard 0, units over the quantity come off the shards with the most to
    spare, and no shard is left with fewer than it has sold, has in flight and holds back for
    its waves (by Redis's clock), so the shards together offer what the database has and no
    wave opens early. Rebuilds the sale if Redis lost it. Returns what it found, or None if it
    had to rebuild or skip.
    """
    shards = sale.stock_shards
    with redis_sales.sale_lock(sale.pk, "reconcile") as lock:
        if lock is None:
            return None
        if not redis_sales.sale_is_loaded(sale.pk, shards):
            logger.error("flash sale %s was missing from Redis; rebuilt from the database", sale.pk)
            flash_sale_preheat(sale=sale)
            return None
        with transaction.atomic():
            locked = FlashSale.objects.locked().get(pk=sale.pk)
            with redis_sales.sale_move_lock(sale.pk, wait_ms=redis_sales.MOVE_LOCK_WAIT_MS) as moves:
                if moves is None:
                    return None
                rows = shards_locked(sale.pk)
                states = redis_sales.sale_shard_states(sale.pk, shards, fence=moves.fence)
                if not all(states):  # A shard lost since the look above: the next preheat rebuilds it.
                    return None
                streams = [redis_sales.reservations_in_stream(sale.pk, row.index, shards) for row in rows]
                inactive = list(User.objects.filter(is_active=False).values_list("pk", flat=True))
                settled = [locked.reservations_settled(e.reservation_id for e in s) for s in streams]
                if locked.status in FlashSale.OPEN_STATUSES:
                    floors = [
                        row.units_sold + redis_sales.units_in_flight(stream, done) + state.held_back
                        for row, stream, done, state in zip(rows, streams, settled, states, strict=True)
                    ]
                    current = [state.allotment for state in states]
                    allotments = allotments_share(quantity=locked.quantity, floors=floors, current=current)
                else:  # A closed sale offers nothing: each shard's allotment is what it sold.
                    allotments = [row.units_sold for row in rows]
                with redis_sales.sale_units_in_transit(sale.pk, moves):
                    parts = [
                        redis_sales.sale_reconcile_counters(
                            sale_id=sale.pk,
                            quantity=allotments[row.index],
                            units_sold=row.units_sold,
                            held_by_user=locked.orders.units_by_user(shard=row.index, shards=shards),
                            settled=settled[row.index],
                            ends_at=locked.ends_at,
                            per_user_limit=locked.per_user_limit,
                            version=locked.version,
                            blocked_users=[
                                user for user in inactive if redis_sales.home_shard(user, shards) == row.index
                            ],
                            shard=row.index,
                            shards=shards,
                        )
                        for row in rows
                    ]
            result = redis_sales.Reconciliation.of_shards(parts)
    if result.drifted:
        sale_gate_reopen(sale.pk)
        logger.error(
            "flash sale %s drifted: Redis remaining %s, expected %s (%s in flight), %s buyers repaired, terms %s",
            sale.pk,
            result.remaining_before,
            result.remaining_expected,
            result.in_flight,
            result.buyers_repaired,
            "repaired" if result.terms_repaired else "agreed",
        )
        SaleDrift.objects.create(
            flash_sale=sale,
            remaining_before=result.remaining_before,
            remaining_expected=result.remaining_expected,
            in_flight=result.in_flight,
            buyers_repaired=result.buyers_repaired,
            terms_repaired=result.terms_repaired,
        )
    return result


def flash_sale_drifts_notify() -> int:
    """E-mail the sales staff about each drift reconciliation found, once: a drift is claimed
    (`notified_at`) by exactly one caller, and given back if the mail could not be sent.
    Returns how many drifts this call reported."""
    recipients = staff_emails_with("shop.view_flashsale")
    if not recipients:
        return 0
    reported = 0
    for drift in SaleDrift.objects.filter(notified_at__isnull=True).select_related("flash_sale").order_by("pk"):
        if not SaleDrift.objects.filter(pk=drift.pk, notified_at__isnull=True).update(notified_at=timezone.now()):
            continue  # Another run took it.
        try:
            send_mail(
                subject=f"Drift repaired in flash sale #{drift.flash_sale_id}",
                message=(
                    f"Reconciliation found Redis disagreeing with the database for {drift.flash_sale} and "
                    f"repaired it.\n\nRedis said {drift.remaining_before} left; the database says "
                    f"{drift.remaining_expected} ({drift.in_flight} in flight); {drift.buyers_repaired} shoppers' "
                    f"tallies repaired{'; its end and limit set again' if drift.terms_repaired else ''}.\n"
                    f"Found at {drift.found_at:%Y-%m-%d %H:%M:%S %Z}.\n"
                ),
                from_email=None,
                recipient_list=recipients,
            )
        except OSError:
            SaleDrift.objects.filter(pk=drift.pk).update(notified_at=None)
            raise
        reported += 1
    return reported
