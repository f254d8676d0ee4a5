"""Purchase admission: the sale's Redis layer decides in one round trip, or PostgreSQL alone
when Redis is away; and what became of a reservation.

A purchase reads downward from here: `purchase_admit` -> the sale gate and the circuit breaker
-> `inventory.redis_sales.reservation_admit` -> `inventory/lua/admit.lua`. The order writer
(`orders.writer`) turns what is admitted into orders.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from django.utils import timezone
from kombu.exceptions import KombuError

from core.breaker import redis_breaker
from core.conf import hot_settings
from core.exceptions import DomainError, IdempotencyKeyReused, RateLimited
from core.metrics import purchase_outcome
from core.middleware import request_id_var
from inventory import redis_sales
from inventory.redis_sales import Outcome
from inventory.redis_sales.gate import sale_gate
from limits.buckets import Limit
from orders import tasks
from orders.blocks import block_list
from purchase.database_path import purchase_admit_database, replay_from_database
from purchase.exceptions import (
    AccountBlocked,
    PurchaseBlocked,
    PurchasePassInvalid,
    PurchaseRefused,
    SaleLayerUnavailable,
    SaleNotFound,
)
from purchase.passes import CheckedPass, purchase_pass_check, spent_passes
from purchase.reservations import reservation_id_new
from purchase.terms import flash_sale_terms
from purchase.waiting_room import queue_turn_check
from shop.models import FlashSale
from shop.services import flash_sale_preheat, flash_sale_should_be_loaded

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
        purchase_outcome(SaleNotFound.code).inc()
        raise SaleNotFound() from error
    except DomainError as error:
        purchase_outcome(error.code).inc()
        raise
    purchase_outcome("accepted").inc()
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
    if hot_settings.PURCHASE_ADMISSION == "database":
        return purchase_admit_database(**request, checked_pass=checked_pass)
    shards = flash_sale_terms(sale_id).shards
    shard = redis_sales.home_shard(user_id, shards)
    refusal = sale_gate.refusal(sale_id)
    if refusal and sale_gate.is_newcomer(sale_id, user_id):
        # No first answer of this shopper's to give again: the crowd at a closed sale costs no
        # round trip (inventory/redis_sales/gate.py).
        raise PurchaseRefused(refusal, next_wave_at=sale_gate.next_wave_at(sale_id))
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
                admission = replay_from_database(
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
                sale_gate.close(sale_id, admission.outcome, next_wave_at=admission.next_wave_at, shards=shards)
    except redis.RedisError as error:
        if refusal:
            raise PurchaseRefused(refusal) from error
        if hot_settings.PURCHASE_DATABASE_FALLBACK:
            return purchase_admit_database(**request, checked_pass=checked_pass)
        raise SaleLayerUnavailable() from error
    if admission.replayed and admission.quantity != quantity:
        raise IdempotencyKeyReused()
    if admission.outcome == Outcome.RATE_LIMITED:
        raise RateLimited(admission.retry_after)
    if admission.outcome == Outcome.PASS_SPENT:
        spent_passes.add(checked_pass.nonce, checked_pass.expires)
        raise PurchasePassInvalid()
    if admission.outcome == Outcome.BLOCKED:
        raise AccountBlocked()
    if admission.outcome == "wave":
        raise PurchaseRefused(Outcome.SOLD_OUT, next_wave_at=admission.next_wave_at)
    if admission.outcome != Outcome.ACCEPTED:
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
    sale's purchase pass if it requires one (purchase/passes.py), and the waiting room's turn if it
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
        purchase_outcome(error.code).inc()
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
            replay = replay_from_database(
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
