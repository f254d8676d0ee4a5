"""The order writer: reservations admitted into a sale's Redis stream become orders in
PostgreSQL, in batches (one transaction, one counter update, one INSERT each), idempotent by
reservation id, acknowledged and settled back in Redis by one script after commit.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from core.metrics import WRITER_BATCH_SIZE, WRITER_LAG_SECONDS
from inventory import redis_sales
from inventory.redis_sales import GiveBack, StreamReservation
from inventory.redis_sales.gate import sale_gate_reopen
from orders.emails import order_emails_schedule
from orders.models import GIVE_BACK, FailedReservation, Order, OrderEmail
from shop.models import FlashSale, FlashSaleShard
from shop.services import flash_sale_shards_rebalance

# "orders.writer": one line per reservation settled; at very high rates, raise its level.
logger = logging.getLogger(__name__)
T = TypeVar("T")

# The second admission of one request (its id twice in the stream) holds units and a tally
# that no order uses.
DUPLICATE = GiveBack(units=True, tally=True)


@dataclass
class BatchOutcome:
    written: int = 0
    failed: int = 0
    skipped: int = 0


class ShardShort(Exception):
    """A stock shard's allotment has less room than a batch needs: borrow, then write again."""

    def __init__(self, units: int):
        super().__init__(f"{units} units short")
        self.units = units


# Rounds of borrowing room for one batch before what fits decides (another shard's writer may
# borrow back what this one just took, until the allotments follow Redis's).
BORROW_ROUNDS = 3


def with_room(write: Callable[[bool], T], *, sale_id: int, shard: int) -> T:
    """Run `write(may_borrow)`, a transaction that raises ShardShort when its shard's allotment
    is short, borrowing from the sale's other shards (in a transaction of its own) and running
    it again, until it fits, nothing more can be borrowed, or BORROW_ROUNDS; then whatever
    room there is decides (`may_borrow=False`)."""
    for _ in range(BORROW_ROUNDS):
        try:
            return write(True)
        except ShardShort as short:
            if not flash_sale_shards_rebalance(sale_id=sale_id, shard=shard, units=short.units):
                break
    return write(False)


def shard_lock(*, sale_id: int, shard: int) -> FlashSaleShard:
    """Lock a stock shard's row, and read its sale's terms after the lock (a close or an edit
    locks every shard first, so a batch sees them before or after, never half)."""
    return (
        FlashSaleShard.objects.select_for_update(of=("self",))
        .select_related("flash_sale")
        .get(flash_sale_id=sale_id, index=shard)
    )


def shard_room_check(row: FlashSaleShard, *, units: int, may_borrow: bool) -> None:
    """Raise ShardShort when `units` more do not fit the shard's allotment but may be borrowed
    from the sale's other shards."""
    sale = row.flash_sale
    if may_borrow and units > row.room and sale.stock_shards > 1 and sale.status in FlashSale.OPEN_STATUSES:
        raise ShardShort(units - row.room)


def reservations_decide(
    *, sale: FlashSale, room: int, entries: list[StreamReservation]
) -> tuple[list[StreamReservation], list[FailedReservation]]:
    """Which new reservations of a sale become orders, and the refusals of the others, with
    `room` units left in their stock shard (whose row the caller has locked).

    Writes nothing; the database's view (units sold, each user's orders, the accounts)
    decides. Sold out is judged first: a refusal for any other reason means the database had
    room for the units, so Redis may offer them again.
    """
    user_ids = {entry.user_id for entry in entries}
    active = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "is_active"))
    held = sale.orders.units_by_user(user_ids=user_ids)
    # A closed sale has released its unsold units already; nothing more can be written.
    closed = sale.status not in FlashSale.OPEN_STATUSES
    accepted, failures = [], []
    for entry in entries:
        reason = None
        if closed:
            reason = FailedReservation.Reason.SALE_CLOSED
        elif entry.quantity > room:
            reason = FailedReservation.Reason.SOLD_OUT
        elif entry.user_id not in active:
            reason = FailedReservation.Reason.UNKNOWN_USER
        elif not active[entry.user_id]:
            reason = FailedReservation.Reason.ACCOUNT_INACTIVE
        elif held.get(entry.user_id, 0) + entry.quantity > sale.per_user_limit:
            reason = FailedReservation.Reason.LIMIT_EXCEEDED
        if reason:
            failures.append(
                FailedReservation(
                    reservation_id=entry.reservation_id,
                    flash_sale=sale,
                    user_id=entry.user_id,
                    quantity=entry.quantity,
                    reason=reason,
                )
            )
            continue
        room -= entry.quantity
        held[entry.user_id] = held.get(entry.user_id, 0) + entry.quantity
        accepted.append(entry)
    return accepted, failures


def reservation_lost(*, sale: FlashSale, entry: StreamReservation) -> FailedReservation:
    return FailedReservation(
        reservation_id=entry.reservation_id,
        flash_sale=sale,
        user_id=entry.user_id,
        quantity=entry.quantity,
        reason=FailedReservation.Reason.LOST,
    )


# Every order of a batch in one statement: three arrays instead of a row of parameters per
# order, and no model instances. The hot path of the writer; the rest of the shop uses the ORM.
INSERT_ORDERS = f"""
    INSERT INTO {Order._meta.db_table}
        (user_id, quantity, reservation_id, sku_id, flash_sale_id, unit_price, total, status, admission,
         pay_by, created_at, updated_at)
    SELECT batch.user_id, batch.quantity, batch.reservation_id, %(sku)s, %(sale)s, %(price)s,
           %(price)s * batch.quantity, %(status)s, %(admission)s, %(pay_by)s, %(now)s, %(now)s
    FROM unnest(%(users)s::bigint[], %(quantities)s::integer[], %(reservations)s::varchar[])
        AS batch(user_id, quantity, reservation_id)
    RETURNING reservation_id, id
"""  # noqa: S608 - the table name is the model's own, every value a parameter


def orders_insert(
    *,
    shard: FlashSaleShard,
    accepted: list[StreamReservation],
    admission: Order.Admission = Order.Admission.REDIS,
) -> dict[str, int]:
    """Write the orders of accepted reservations of a stock shard whose row the caller has
    locked. Returns their ids by reservation id."""
    if not accepted:
        return {}
    sale = shard.flash_sale
    units = sum(entry.quantity for entry in accepted)
    now = timezone.now()
    # One guarded update of the shard's row per batch; the CHECK constraint backs it up.
    counted = FlashSaleShard.objects.filter(pk=shard.pk, units_sold__lte=F("allotment") - units).update(
        units_sold=F("units_sold") + units
    )
    if not counted:
        raise IntegrityError(f"shard {shard.index} of flash sale {sale.pk} has no room for {units} more units")
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_ORDERS,
            {
                "sku": sale.sku_id,
                "sale": sale.pk,
                "price": sale.price,
                "status": Order.Status.PENDING_PAYMENT,
                "admission": admission,
                "pay_by": now + timedelta(seconds=settings.ORDER_PAYMENT_TIMEOUT),
                "now": now,
                "users": [entry.user_id for entry in accepted],
                "quantities": [entry.quantity for entry in accepted],
                "reservations": [entry.reservation_id for entry in accepted],
            },
        )
        written = dict(cursor.fetchall())
    # One task per batch, not per order: the writer's rate is the sale's.
    order_emails_schedule(order_ids=written.values(), kind=OrderEmail.Kind.CONFIRMED)
    return written


def order_write_batch(
    *, sale_id: int, entries: list[StreamReservation], shard: int = 0, shards: int = 1
) -> BatchOutcome:
    """Turn a batch of a stock shard's reservations into orders: one transaction, one counter
    update (of the shard's row: the shards of a sale write in parallel).

    Idempotent by reservation id: a redelivered batch writes nothing twice, and a request
    admitted twice (the same id in two entries) makes one order. A reservation the database
    refuses becomes a FailedReservation. After commit, one script acknowledges the batch and
    gives back to Redis what it holds for the reservations that made no order (GIVE_BACK).
    """

    def write(may_borrow: bool) -> tuple[dict[str, GiveBack], list[StreamReservation], dict, list]:
        give_back: dict[str, GiveBack] = {}
        with transaction.atomic():
            # The shard's row lock serialises its writers (and reconciliation), so the "already
            # settled" look below sees every batch committed before this one.
            row = shard_lock(sale_id=sale_id, shard=shard)
            settled = row.flash_sale.reservations_settled({entry.reservation_id for entry in entries})
            todo, seen = [], set()
            for entry in entries:
                if not entry.reservation_id:
                    continue  # Deleted from the stream already; only the acknowledgement is left.
                if entry.reservation_id in seen:
                    give_back[entry.entry_id] = DUPLICATE
                elif entry.reservation_id in settled:
                    give_back[entry.entry_id] = settled[entry.reservation_id]
                else:
                    todo.append(entry)
                seen.add(entry.reservation_id)
            # Under the shard's row lock, which a rebuild from the database takes before it reads
            # the orders: a reservation Redis still holds is counted by a later rebuild once this
            # commits; one Redis lost since it was read (restarted empty, perhaps rebuilt already)
            # is counted by none, so it makes no order either, and its answer is "lost".
            held = redis_sales.reservations_still_pending(
                sale_id=sale_id, reservation_ids=[entry.reservation_id for entry in todo], shard=shard, shards=shards
            )
            lost = [entry for entry in todo if entry.reservation_id not in held]
            todo = [entry for entry in todo if entry.reservation_id in held]
            shard_room_check(row, units=sum(entry.quantity for entry in todo), may_borrow=may_borrow)
            accepted, failures = reservations_decide(sale=row.flash_sale, room=row.room, entries=todo)
            written = orders_insert(shard=row, accepted=accepted)
            failures += [reservation_lost(sale=row.flash_sale, entry=entry) for entry in lost]
            FailedReservation.objects.bulk_create(failures)
            todo += lost
        return give_back, todo, written, failures

    give_back, todo, written, failures = with_room(write, sale_id=sale_id, shard=shard)
    reasons = {failure.reservation_id: failure.reason for failure in failures}
    for entry in todo:
        if entry.reservation_id in reasons:
            give_back[entry.entry_id] = GIVE_BACK[reasons[entry.reservation_id]]
    redis_sales.reservations_done(sale_id=sale_id, entries=entries, give_back=give_back, shard=shard, shards=shards)
    if any(back.units for back in give_back.values()):
        sale_gate_reopen(sale_id)
    _observe_batch(todo, written=written, failed=reasons)
    return BatchOutcome(written=len(written), failed=len(failures), skipped=len(entries) - len(todo))


def _observe_batch(entries: list[StreamReservation], *, written: dict[str, int], failed: dict[str, str]) -> None:
    WRITER_BATCH_SIZE.observe(len(entries))
    now_ms = time.time() * 1000
    for entry in entries:
        # Under the purchase's own request id, so that one purchase reads from request to order.
        context = {"request_id": entry.request_id, "reservation_id": entry.reservation_id}
        if entry.reservation_id in written:
            # A stream entry's id starts with Redis's clock at XADD, in milliseconds.
            WRITER_LAG_SECONDS.observe(max(0.0, now_ms - int(entry.entry_id.split("-")[0])) / 1000)
            order_id = written[entry.reservation_id]
            logger.info("reservation written as order %s", order_id, extra={**context, "order_id": order_id})
        else:
            reason = failed[entry.reservation_id]
            logger.info("reservation failed: %s", reason, extra={**context, "reason": reason})


def linger(seconds: float) -> None:
    """The writer's wait for more reservations to gather after a short batch."""
    time.sleep(seconds)


def order_writer_drain(*, sale_id: int, consumer: str, shard: int = 0, shards: int = 1) -> bool:
    """Write the sale's new reservations in batches until its stream is empty.

    Starts with what this consumer read before and could not write (the database was away),
    then takes new reservations. After a short batch it waits ORDER_WRITER_LINGER_MS for more
    to gather: a batch costs the same handful of queries whatever its size, so during a storm
    that arrives slower than it is written, lingering turns a batch per order or two into one
    per tenth of a second. Bounded by ORDER_WRITER_MAX_BATCHES so that no task runs forever.
    Returns True when the stream was emptied, False when work is left for another run.
    """
    own_pending = True
    for _ in range(settings.ORDER_WRITER_MAX_BATCHES):
        entries = redis_sales.reservations_read(
            sale_id=sale_id,
            consumer=consumer,
            count=settings.ORDER_WRITER_BATCH_SIZE,
            own_pending=own_pending,
            shard=shard,
            shards=shards,
        )
        if not entries and own_pending:
            own_pending = False
            continue
        if not entries:
            return True
        result = order_write_batch(sale_id=sale_id, entries=entries, shard=shard, shards=shards)
        logger.info("sale %s: wrote %s orders, %s failed, %s already written", sale_id, result.written,
                    result.failed, result.skipped)  # fmt: skip
        if len(entries) < settings.ORDER_WRITER_BATCH_SIZE:
            linger(settings.ORDER_WRITER_LINGER_MS / 1000)
    return False


def order_writer_reclaim(*, sale_id: int, consumer: str, shard: int = 0, shards: int = 1) -> int:
    """Write reservations a dead consumer left unacknowledged. Returns how many it took over."""
    taken = 0
    for _ in range(settings.ORDER_WRITER_MAX_BATCHES):
        entries = redis_sales.reservations_claim_stale(
            sale_id=sale_id,
            consumer=consumer,
            min_idle_ms=settings.ORDER_WRITER_RECLAIM_IDLE_MS,
            count=settings.ORDER_WRITER_BATCH_SIZE,
            shard=shard,
            shards=shards,
        )
        if not entries:
            break
        order_write_batch(sale_id=sale_id, entries=entries, shard=shard, shards=shards)
        taken += len(entries)
    return taken
