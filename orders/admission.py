"""Purchase admission: the sale's Redis layer decides in one round trip, or PostgreSQL alone
when Redis is away; and what became of a reservation.

A purchase reads downward from here: `purchase_admit` -> the sale gate and the circuit breaker
-> `inventory.redis_sales.reservation_admit` -> `inventory/lua/admit.lua`. The order writer
(`orders.writer`) turns what is admitted into orders.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Value
from django.utils import timezone
from kombu.exceptions import KombuError

from config.exceptions import DomainError, IdempotencyKeyReused, RateLimited
from config.metrics import PURCHASE_OUTCOMES
from config.middleware import request_id_var
from inventory import redis_sales
from inventory.redis_sales import StreamReservation
from limits.breaker import redis_breaker
from limits.buckets import Limit
from orders import tasks
from orders.blocks import block_list
from orders.exceptions import (
    AccountBlocked,
    AccountUnknown,
    PurchaseBlocked,
    PurchasePassInvalid,
    PurchaseRefused,
    SaleLayerUnavailable,
)
from orders.models import FailedReservation, Order, PurchasePassUse, PurchaseRefusal
from orders.passes import CheckedPass, purchase_pass_check, spent_passes
from orders.reservations import reservation_id_new, reservation_id_parse
from orders.waiting_room import queue_turn_check
from orders.writer import orders_insert, reservations_decide, shard_lock, shard_room_check, with_room
from shop.exceptions import SaleNotFound
from shop.gate import sale_gate
from shop.models import FlashSale, FlashSaleShard
from shop.selectors import flash_sale_terms
from shop.services import OPEN_STATUSES, flash_sale_preheat, flash_sale_should_be_loaded

logger = logging.getLogger(__name__)


# --- Admission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Screened:
    """A purchase attempt that showed what its sale asks before Redis is asked; its purchase
    pass, checked (None when the sale asks for none)."""

    checked_pass: CheckedPass | None


def purchase_admit(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    idempotency_key: str,
    limits: Sequence[Limit] = (),
    purchase_pass: str | None = None,
    queue_ticket: str | None = None,
    address: str | None = None,
    screened: Screened | None = None,
) -> str:
    """Admit a purchase attempt in Redis, in one round trip in the usual case.

    `limits` are the attempt's shared rate limits, taken by the admission script itself.
    `purchase_pass` is the Purchase-Pass the attempt carried, checked first when the sale asks
    for one, and `queue_ticket` the Queue-Ticket, whose turn must have come in a sale with a
    waiting room, unless a door `screened` them already (`purchase_screen`); `address` is the
    client's, for blocks of networks. Returns the reservation id.
    Raises PurchaseRefused (with the reason), PurchaseBlocked, PurchasePassInvalid, NotYourTurn,
    IdempotencyKeyReused when the key came with another quantity before, RateLimited,
    SaleNotFound for an unknown sale, and SaleLayerUnavailable when Redis cannot be reached.
    Every answer is counted by outcome, whichever door (API or storefront) the attempt came
    through.
    """
    try:
        reservation_id = _purchase_admit(
            sale_id=sale_id,
            user_id=user_id,
            quantity=quantity,
            idempotency_key=idempotency_key,
            limits=limits,
            purchase_pass=purchase_pass,
            queue_ticket=queue_ticket,
            address=address,
            screened=screened,
        )
    except FlashSale.DoesNotExist as error:
        PURCHASE_OUTCOMES.labels(SaleNotFound.code).inc()
        raise SaleNotFound() from error
    except DomainError as error:
        PURCHASE_OUTCOMES.labels(error.code).inc()
        raise
    PURCHASE_OUTCOMES.labels("accepted").inc()
    return reservation_id


def _purchase_admit(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    idempotency_key: str,
    limits: Sequence[Limit],
    purchase_pass: str | None,
    queue_ticket: str | None,
    address: str | None,
    screened: Screened | None,
) -> str:
    # Before anything else, so that a bot without a good pass, or early, costs no Redis call.
    if screened is None:
        screened = _screen(
            sale_id=sale_id, user_id=user_id, purchase_pass=purchase_pass, queue_ticket=queue_ticket, address=address
        )
    checked_pass = screened.checked_pass
    request = {"sale_id": sale_id, "user_id": user_id, "quantity": quantity, "idempotency_key": idempotency_key}
    if settings.PURCHASE_ADMISSION == "database":
        return purchase_admit_database(**request, checked_pass=checked_pass)
    shards = flash_sale_terms(sale_id).shards
    shard = redis_sales.home_shard(user_id, shards)
    refusal = sale_gate.refusal(sale_id)
    try:
        admission = None
        if refusal:
            # The sale is closed to newcomers; only a repeat of an earlier request gets its own
            # first answer. The gate's answers never extend the gate.
            admission, loaded = redis_breaker.call(
                lambda: _replay_from_redis(
                    sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key, shard=shard, shards=shards
                )
            )
            if admission is None and refusal == "ended":
                # Its keys may be gone with the sale's: the database has every first answer.
                admission = _replay_from_database(
                    sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key, quantity=quantity
                )
            if admission is None and (loaded or refusal == "ended"):
                raise PurchaseRefused(refusal, next_wave_at=sale_gate.next_wave_at(sale_id))
        if admission is None:
            admission = redis_breaker.call(
                lambda: _admit(
                    **request,
                    limits=limits,
                    pass_uses=checked_pass and checked_pass.uses,
                    shard=shard,
                    shards=shards,
                )
            )
            if not admission.replayed:
                # Only a fresh answer closes the gate: a replayed one may be stale.
                sale_gate.close(sale_id, admission.outcome, next_wave_at=admission.next_wave_at)
    except redis.RedisError as error:
        if refusal:
            raise PurchaseRefused(refusal) from error
        if settings.PURCHASE_DATABASE_FALLBACK:
            return purchase_admit_database(**request, checked_pass=checked_pass)
        raise SaleLayerUnavailable() from error
    if admission.replayed and admission.quantity != quantity:
        raise IdempotencyKeyReused()
    if admission.outcome == "rate_limited":
        raise RateLimited(admission.retry_after)
    if admission.outcome == "pass_spent":
        spent_passes.add(checked_pass.nonce, checked_pass.expires)
        raise PurchasePassInvalid()
    if admission.outcome == "blocked":
        raise AccountBlocked()
    if admission.outcome == "wave":
        raise PurchaseRefused("sold_out", next_wave_at=admission.next_wave_at)
    if admission.outcome != "accepted":
        raise PurchaseRefused(admission.outcome)
    if admission.schedule_drain:
        try:
            tasks.order_writer_drain.apply_async(args=[sale_id, shard, shards], retry=False)
        except (KombuError, OSError):
            logger.warning("could not schedule the order writer for sale %s; the sweep will drain it", sale_id)
    return admission.reservation_id


def _replay_from_redis(
    *, sale_id: int, user_id: int, idempotency_key: str, shard: int, shards: int
) -> tuple[redis_sales.Admission | None, bool]:
    """A repeat's first answer as Redis knows it, for a sale the gate has closed, and whether
    Redis holds the shopper's shard: one it lost since is loaded by an admission attempt, which
    finds the repeat's answer in the database."""
    try:
        replay = redis_sales.admission_replay(
            sale_id=sale_id,
            user_id=user_id,
            idempotency_key=idempotency_key,
            reservation_id=reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key),
            shard=shard,
            shards=shards,
        )
    except redis_sales.SaleNotLoaded:
        return None, False
    return replay, True


def _screen(
    *, sale_id: int, user_id: int, purchase_pass: str | None, queue_ticket: str | None, address: str | None
) -> Screened:
    """What a purchase must show before its sale's Redis layer is asked, in the one order both
    doors follow: no block in force for the shopper or their network (orders/blocks.py), the
    sale's purchase pass if it requires one (orders/passes.py), and the waiting room's turn if it
    has one (orders/waiting_room.py). The admission script then takes, in its order, the rate
    limits, a repeat's first answer, the pass's uses and the sale's own answer (admit.lua).
    Raises PurchaseBlocked, PurchasePassInvalid, NotYourTurn, and FlashSale.DoesNotExist for an
    unknown sale."""
    if block_list.blocks(sale_id=sale_id, user_id=user_id, address=address):
        raise PurchaseBlocked()
    terms = flash_sale_terms(sale_id)
    checked_pass = None
    if terms.requires_pass:
        checked_pass = purchase_pass_check(purchase_pass, sale_id=sale_id, user_id=user_id)
    queue_turn_check(terms, sale_id=sale_id, user_id=user_id, ticket=queue_ticket)
    return Screened(checked_pass)


def purchase_screen(
    *, sale_id: int, user_id: int, purchase_pass: str | None, queue_ticket: str | None, address: str | None
) -> Screened | None:
    """For a door to screen a purchase before it reads the rest of it, and hand what it screened
    to `purchase_admit`: raises PurchaseBlocked, PurchasePassInvalid or NotYourTurn, counted;
    None for an unknown sale, left to the admission's own answer."""
    try:
        return _screen(
            sale_id=sale_id, user_id=user_id, purchase_pass=purchase_pass, queue_ticket=queue_ticket, address=address
        )
    except FlashSale.DoesNotExist:
        return None
    except DomainError as error:
        PURCHASE_OUTCOMES.labels(error.code).inc()
        raise


# Rounds of borrowing units from a sale's other shards before a short shard's answer is sold out.
BORROW_ROUNDS = 3


def _admit(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    idempotency_key: str,
    limits: Sequence[Limit],
    pass_uses: Limit | None,
    shard: int,
    shards: int,
) -> redis_sales.Admission:
    def attempt(
        *, limits: Sequence[Limit] = (), pass_uses: Limit | None = None, short_is_final: bool = shards == 1
    ) -> redis_sales.Admission:
        return redis_sales.reservation_admit(
            sale_id=sale_id,
            user_id=user_id,
            quantity=quantity,
            reservation_id=reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key),
            idempotency_key=idempotency_key,
            request_id=request_id_var.get(),
            limits=limits,
            pass_uses=pass_uses,
            shard=shard,
            shards=shards,
            short_is_final=short_is_final,
        )

    admission = attempt(limits=limits, pass_uses=pass_uses)
    if admission.outcome == "not_loaded":
        # Not in Redis: not preheated yet, or Redis lost it. The database decides whether it
        # should be; the script took the rate limits, not yet the pass's use.
        sale = FlashSale.objects.get(pk=sale_id)
        if not flash_sale_should_be_loaded(sale=sale, now=timezone.now()):
            # Closed (its keys dropped) or not near its start: a repeat still gets its first answer.
            replay = _replay_from_database(
                sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key, quantity=quantity
            )
            if replay is not None:
                return replay
            outcome = "not_started" if sale.status == FlashSale.Status.SCHEDULED else "ended"
            return redis_sales.Admission(outcome, "", False, False, quantity)
        flash_sale_preheat(sale=sale)
        admission = attempt(pass_uses=pass_uses)
        if admission.outcome == "not_loaded":  # Another process is loading it right now.
            raise SaleLayerUnavailable()
    # The shopper's home shard is short while the sale may have units in others: move some
    # here and ask again (the first attempt took the limits and the pass's use). Sold out is the
    # answer only once a move found none left elsewhere.
    for _ in range(BORROW_ROUNDS):
        if admission.outcome != "short":
            break
        try:
            left = redis_sales.sale_borrow(sale_id=sale_id, shard=shard, shards=shards, units=quantity)
        except redis_sales.SaleNotLoaded:  # Redis lost a shard: rebuild it, then ask again.
            flash_sale_preheat(sale=FlashSale.objects.get(pk=sale_id))
            left = None
        admission = attempt(short_is_final=left is not None and left < quantity)
    if admission.outcome in ("short", "not_loaded"):
        # Units could not be moved yet (a reconcile holds the lock), or the sale left Redis since.
        raise SaleLayerUnavailable()
    return admission


# --- Results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseResult:
    reservation_id: str
    status: str  # pending, confirmed, failed
    order_id: int | None = None
    reason: str | None = None


def purchase_result(*, reservation_id: str, user: AbstractBaseUser) -> PurchaseResult | None:
    """What became of a reservation, or None if this shop did not issue it to `user`."""
    ref = reservation_id_parse(reservation_id)
    if ref is None or ref.user_id != user.pk:
        return None
    found = _result_in_database(reservation_id)
    if found:
        return found
    try:
        shards = flash_sale_terms(ref.sale_id).shards
        pending = redis_sales.reservation_is_pending(
            sale_id=ref.sale_id,
            reservation_id=reservation_id,
            shard=redis_sales.home_shard(ref.user_id, shards),
            shards=shards,
        )
    except FlashSale.DoesNotExist:
        pending = False
    except redis.RedisError:
        pending = True  # Cannot tell yet; do not call it failed.
    if pending:
        return PurchaseResult(reservation_id, "pending")
    return _reservation_lost(sale_id=ref.sale_id, user_id=ref.user_id, reservation_id=reservation_id)


def _result_in_database(reservation_id: str) -> PurchaseResult | None:
    order_id = Order.objects.filter(reservation_id=reservation_id).values_list("pk", flat=True).first()
    if order_id is not None:
        return PurchaseResult(reservation_id, "confirmed", order_id=order_id)
    reason = FailedReservation.objects.filter(reservation_id=reservation_id).values_list("reason", flat=True).first()
    if reason is not None:
        return PurchaseResult(reservation_id, "failed", reason=reason)
    return None


def _reservation_lost(*, sale_id: int, user_id: int, reservation_id: str) -> PurchaseResult:
    """Neither Redis nor the database has it: Redis lost it. Recorded as failed, so that the
    answer stays true: a writer that read it before the loss can no longer confirm it."""
    with transaction.atomic():
        # The shard's row lock orders this after any batch a writer is committing: that batch's
        # order is then seen here, or this record is seen by the batch.
        shards = FlashSale.objects.filter(pk=sale_id).values_list("stock_shards", flat=True).first()
        row = None
        if shards is not None:
            row = shard_lock(sale_id=sale_id, shard=redis_sales.home_shard(user_id, shards))
        found = _result_in_database(reservation_id)
        if found:
            return found
        if row is not None:
            FailedReservation.objects.create(
                reservation_id=reservation_id,
                flash_sale_id=sale_id,
                user_id=user_id,
                quantity=0,
                reason=FailedReservation.Reason.LOST,
            )
    return PurchaseResult(reservation_id, "failed", reason=FailedReservation.Reason.LOST)


REFUSAL_CODES = {
    FailedReservation.Reason.SOLD_OUT: "sold_out",
    FailedReservation.Reason.LIMIT_EXCEEDED: "limit_exceeded",
    FailedReservation.Reason.SALE_CLOSED: "ended",
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

    refused = with_room(answer, sale_id=sale_id, shard=shard)
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


def _replay_from_database(
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
    elif sale.status not in OPEN_STATUSES or now >= sale.ends_at:
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
    Redis path does."""
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
        if refusal == "sold_out" and left is None:
            raise SaleLayerUnavailable()
        return refusal

    try:
        return redis_breaker.call(take)
    except redis.RedisError:
        logger.warning("sale %s: Redis has yet to count an order of the database path; reconcile will", sale.pk)
        return None
