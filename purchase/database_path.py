"""The database-only path: admission and order in one PostgreSQL transaction, for when Redis is
unreachable (PURCHASE_DATABASE_FALLBACK) or is not used (PURCHASE_ADMISSION=database)."""

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.utils import timezone

from core.breaker import redis_breaker
from core.exceptions import IdempotencyKeyReused
from inventory import redis_sales
from inventory.redis_sales import Outcome, StreamReservation
from orders.models import FailedReservation, Order, PurchasePassUse, PurchaseRefusal
from orders.writer import orders_insert, reservations_decide, shard_lock, shard_room_check, with_room
from purchase.exceptions import (
    AccountBlocked,
    AccountUnknown,
    PurchasePassInvalid,
    PurchaseRefused,
    SaleLayerUnavailable,
)
from purchase.passes import CheckedPass, spent_passes
from purchase.reservations import reservation_id_new
from purchase.terms import flash_sale_terms
from shop.models import FlashSale, FlashSaleShard
from shop.services import flash_sale_preheat

logger = logging.getLogger(__name__)


REFUSAL_CODES = {
    FailedReservation.Reason.SOLD_OUT: Outcome.SOLD_OUT,
    FailedReservation.Reason.LIMIT_EXCEEDED: Outcome.LIMIT_EXCEEDED,
    FailedReservation.Reason.SALE_CLOSED: Outcome.ENDED,
}


def purchase_admit_database(
    *, sale_id: int, user_id: int, quantity: int, idempotency_key: str, checked_pass: CheckedPass | None = None
) -> str:
    """Admission and order in one PostgreSQL transaction, for when Redis is unreachable.

    Slower than the Redis path (every purchase takes the sale's row lock) but just as
    correct, by the same rules in the same order as admit.lua: a repeat's first answer, the
    pass's uses (`checked_pass`, counted here in PurchasePassUse), the window, the waves'
    released units (FlashSale.units_released), the per-user limit, the units left. The
    reservation id is the one the Redis path would have made for the same Idempotency-Key, so a
    repeat finds its order, or its refusal, which is remembered too. Redis's counters, when it
    can be reached, take the units off before the commit (`sale_taken_by_database`); otherwise
    the next reconcile does. Raises as purchase_admit does.
    """
    rid = reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key)
    shard = redis_sales.home_shard(user_id, flash_sale_terms(sale_id).shards)

    def answer(may_borrow: bool) -> DatabaseAnswer:
        with transaction.atomic():
            sale = FlashSale.objects.locked().get(pk=sale_id)
            row = shard_lock(sale_id=sale_id, shard=shard)
            return _database_answer(
                sale=sale,
                shard=row,
                reservation_id=rid,
                idempotency_key=idempotency_key,
                user_id=user_id,
                quantity=quantity,
                checked_pass=checked_pass,
                may_borrow=may_borrow,
            )

    try:
        refused = with_room(answer, sale_id=sale_id, shard=shard)
    except ShoppersShardLost:
        # Rebuilt outside this path's locks (the preheat takes them in their order), then asked
        # again: the units then come off the shopper's shard as Redis counts them, waves and all.
        flash_sale_preheat(sale=FlashSale.objects.get(pk=sale_id))
        try:
            refused = with_room(answer, sale_id=sale_id, shard=shard)
        except ShoppersShardLost as error:  # Lost again, or another process is rebuilding it.
            raise SaleLayerUnavailable() from error
    if refused.code == "pass_spent":
        spent_passes.add(checked_pass.nonce, checked_pass.expires)
        raise PurchasePassInvalid()
    if refused.code:
        raise PurchaseRefused(refused.code, next_wave_at=refused.next_wave_at)
    return rid


def _first_answer_in_database(reservation_id: str) -> tuple[int, str] | None:
    """The first answer the database holds for a request, in one query: (units, "") when it was
    accepted (an order, or a reservation that failed afterwards: its result says so; 0 units
    for one recorded lost), (units, code) for a refusal of the database path."""
    answers = (
        Order.objects.filter(reservation_id=reservation_id)
        .order_by()
        .values_list("quantity", Value(""))
        .union(
            FailedReservation.objects.filter(reservation_id=reservation_id).values_list("quantity", Value("")),
            PurchaseRefusal.objects.filter(reservation_id=reservation_id).values_list("quantity", "code"),
        )
    )
    return next(iter(answers), None)


def replay_from_database(
    *, sale_id: int, user_id: int, idempotency_key: str, quantity: int
) -> redis_sales.Admission | None:
    """The first answer to a request as the database has it, as a replayed admission (of the
    request's `quantity` when the database does not know it: a reservation recorded lost)."""
    rid = reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key)
    first = _first_answer_in_database(rid)
    if first is None:
        return None
    units, code = first
    return redis_sales.Admission(code or "accepted", "" if code else rid, False, True, units or quantity)


class ShoppersShardLost(Exception):
    """Redis lost the shopper's stock shard while it holds others of the sale: those offer the
    wave's released units, so the database alone cannot tell which of them are left here."""


@dataclass(frozen=True)
class DatabaseAnswer:
    code: str | None = None  # None: accepted
    next_wave_at: datetime | None = None


def _database_answer(
    *,
    sale: FlashSale,
    shard: FlashSaleShard,
    reservation_id: str,
    idempotency_key: str,
    user_id: int,
    quantity: int,
    checked_pass: CheckedPass | None,
    may_borrow: bool,
) -> DatabaseAnswer:
    """Under the sale's row lock and its shard's: the first answer to this request if it had
    one, else a new one, written (an order, or the refusal remembered; a refusal between waves
    and a spent pass are not, as admit.lua remembers neither). Raises ShardShort (see
    `with_room`)."""
    first = _first_answer_in_database(reservation_id)
    if first is not None:
        if first[0] not in (quantity, 0):
            raise IdempotencyKeyReused()
        return DatabaseAnswer(first[1] or None)
    # A use per request: a request sent again after an answer that is not remembered (between
    # waves) has spent its use already.
    if checked_pass is not None and not PurchasePassUse.objects.filter(reservation_id=reservation_id).exists():
        if PurchasePassUse.objects.filter(nonce=checked_pass.nonce).count() >= settings.PURCHASE_PASS_USES:
            return DatabaseAnswer("pass_spent")
        PurchasePassUse.objects.create(nonce=checked_pass.nonce, reservation_id=reservation_id, flash_sale=sale)
    now = timezone.now()
    if sale.status == FlashSale.Status.SCHEDULED and now < sale.starts_at:
        code = "not_started"
    elif sale.status not in FlashSale.OPEN_STATUSES or now >= sale.ends_at:
        code = "ended"
    elif sale.next_wave_at(now) and sale.units_sold + quantity > sale.units_released(now):
        return DatabaseAnswer("sold_out", next_wave_at=sale.next_wave_at(now))
    else:
        shard_room_check(shard, units=quantity, may_borrow=may_borrow)
        entry = StreamReservation(entry_id="", reservation_id=reservation_id, user_id=user_id, quantity=quantity)
        accepted, failures = reservations_decide(sale=sale, room=shard.room, entries=[entry])
        if failures and failures[0].reason == FailedReservation.Reason.UNKNOWN_USER:
            raise AccountUnknown()
        if failures and failures[0].reason == FailedReservation.Reason.ACCOUNT_INACTIVE:
            raise AccountBlocked()
        code = (
            REFUSAL_CODES[failures[0].reason]
            if failures
            else _take_in_redis(
                sale=sale,
                user_id=user_id,
                reservation_id=reservation_id,
                idempotency_key=idempotency_key,
                quantity=quantity,
            )
        )
        if code is None:
            orders_insert(shard=shard, accepted=accepted, admission=Order.Admission.DATABASE)
            return DatabaseAnswer()
    PurchaseRefusal.objects.create(
        reservation_id=reservation_id, flash_sale=sale, user_id=user_id, quantity=quantity, code=code
    )
    return DatabaseAnswer(code)


def _take_in_redis(
    *, sale: FlashSale, user_id: int, reservation_id: str, idempotency_key: str, quantity: int
) -> str | None:
    """Before the database path's commit, under the sale's row lock (which reconciliation takes
    too, so it sees the units taken in both places or in neither): when Redis can be reached it
    takes the units as an admission would (taken_by_database.lua), or refuses them by its own
    counters (sold_out, limit_exceeded: returned), so the two paths never admit past each other.
    Should the commit fail, Redis offers less than the database until reconciliation, never
    more. Redis away (the fallback's very case): the database decides alone, and reconciliation
    counts its orders once Redis is back. Raises SaleLayerUnavailable when units could not be
    moved to the shopper's shard in time (or a shard Redis lost holds what it lacks), as the
    Redis path does, and ShoppersShardLost when Redis lost the shopper's own shard but holds
    others."""
    shards, shard = sale.stock_shards, redis_sales.home_shard(user_id, sale.stock_shards)

    def take() -> str | None:
        left = quantity
        if shards > 1:  # The units come off the shopper's home shard: moved there first if short.
            try:
                left = redis_sales.sale_borrow(sale_id=sale.pk, shard=shard, shards=shards, units=quantity)
            except redis_sales.SaleNotLoaded:  # Redis lost a shard; the clock's next preheat rebuilds it.
                left = None
        refusal = redis_sales.sale_taken_by_database(
            sale_id=sale.pk,
            user_id=user_id,
            quantity=quantity,
            reservation_id=reservation_id,
            idempotency_key=idempotency_key,
            shard=shard,
            shards=shards,
        )
        if refusal == "not_loaded":
            if shards > 1 and any(redis_sales.sale_shard_states(sale.pk, shards)):
                raise ShoppersShardLost()
            return None  # Redis holds none of the sale: its next load reads the order from here.
        if refusal == "sold_out" and left is None:
            raise SaleLayerUnavailable()
        return refusal

    try:
        return redis_breaker.call(take)
    except redis.RedisError:
        logger.warning("sale %s: Redis has yet to count an order of the database path; reconcile will", sale.pk)
        return None
