import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.utils import timezone
from kombu.exceptions import KombuError

from accounts.models import User
from config.exceptions import DomainError, IdempotencyKeyReused, RateLimited
from config.metrics import PURCHASE_OUTCOMES, WRITER_BATCH_SIZE, WRITER_LAG_SECONDS
from config.middleware import request_id_var
from inventory import redis_sales
from inventory.redis_sales import GiveBack, StreamReservation
from inventory.services import stock_release, stock_return, stock_sell
from limits.breaker import redis_breaker
from limits.buckets import Limit
from orders.exceptions import (
    AccountBlocked,
    AccountUnknown,
    InvalidTransition,
    PaymentDeclined,
    PurchaseRefused,
    SaleLayerUnavailable,
)
from orders.models import (
    ALLOWED_TRANSITIONS,
    FailedReservation,
    Order,
    OrderTransition,
    PaymentAttempt,
    PurchaseRefusal,
)
from orders.payments import payment_provider
from orders.reservations import reservation_id_new, reservation_id_parse
from orders.selectors import DUPLICATE, GIVE_BACK, order_units_by_user, reservations_settled
from shop.exceptions import SaleNotFound
from shop.gate import sale_gate, sale_gate_reopen
from shop.models import FlashSale
from shop.services import OPEN_STATUSES, flash_sale_preheat, flash_sale_should_be_loaded

logger = logging.getLogger(__name__)
# One line per reservation the writer settles; at very high rates, raise this logger's level.
writer_logger = logging.getLogger("orders.writer")


# --- State machine -----------------------------------------------------------------------------


def order_transition(
    *, order: Order, to: Order.Status, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Order:
    """Move `order` to status `to` and record the move.

    The update is conditional on the status the order has now, so of two callers racing on
    the same order (a payment and a timeout, say) exactly one wins and the other gets
    InvalidTransition. Raises InvalidTransition, changing nothing, for a move the table
    does not allow.
    """
    current = Order.objects.values_list("status", flat=True).get(pk=order.pk)
    if to not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"An order that is {current} cannot become {to}.")
    with transaction.atomic():
        updated = Order.objects.filter(pk=order.pk, status=current).update(status=to, updated_at=timezone.now())
        if not updated:
            raise InvalidTransition("The order changed status meanwhile; try again.")
        OrderTransition.objects.create(order=order, from_status=current, to_status=to, actor=actor, reason=reason)
    order.status = to
    return order


def _lock_order(order: Order) -> Order:
    return Order.objects.select_for_update(of=("self",)).select_related("sku__stock").get(pk=order.pk)


def order_pay(*, order: Order, actor: AbstractBaseUser | None) -> Order:
    """Charge the order through the payment provider and mark it paid; the units are sold.

    The provider is called outside any transaction or lock, under the idempotency key of a
    PaymentAttempt recorded first: if the shop fails after the charge, paying again (or the
    payments sweep) repeats that charge, which the provider answers without charging twice, and
    completes it. An order cancelled while its charge was under way gets the money back.
    Raises InvalidTransition when it is not awaiting payment or its deadline has passed (a
    racing timeout then finds it paid, or the payment finds it cancelled: one wins), and
    PaymentDeclined when the provider refuses.
    """
    with transaction.atomic():
        locked = _lock_order(order)
        if locked.status != Order.Status.PENDING_PAYMENT:
            raise InvalidTransition(f"An order that is {locked.status} cannot be paid.")
        if locked.pay_by <= timezone.now():
            raise InvalidTransition("The time to pay for this order has run out.")
        attempt = locked.payment_attempts.filter(status=PaymentAttempt.Status.STARTED).first()
        if attempt is None:
            attempt = PaymentAttempt.objects.create(
                order=locked, amount=locked.total, idempotency_key=f"order-{locked.pk}-{uuid.uuid4().hex}"
            )
    return payment_complete(attempt=attempt, actor=actor)


def payment_complete(*, attempt: PaymentAttempt, actor: AbstractBaseUser | None = None) -> Order:
    """Send (or send again: the key makes it safe) the attempt's charge, and record its outcome."""
    provider = payment_provider()
    result = provider.charge(order=attempt.order, idempotency_key=attempt.idempotency_key)
    with transaction.atomic():
        locked = _lock_order(attempt.order)
        current = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        if current.status != PaymentAttempt.Status.STARTED:
            raise InvalidTransition(f"This payment is {current.status} already.")
        if not result.approved:
            _payment_attempt_end(current, PaymentAttempt.Status.DECLINED, result.reference)
            declined = True
        elif locked.status == Order.Status.PENDING_PAYMENT:
            # Paid even if the deadline passed while the provider answered: the shopper paid in time.
            order_transition(order=locked, to=Order.Status.PAID, actor=actor, reason=f"payment {result.reference}")
            stock_sell(
                stock=locked.sku.stock,
                quantity=locked.quantity,
                actor=actor,
                reason="Order paid",
                reference=f"order:{locked.pk}",
            )
            _payment_attempt_end(current, PaymentAttempt.Status.SUCCEEDED, result.reference)
            return locked
        else:
            declined = False
    if declined:
        raise PaymentDeclined(result.message or None)
    # The order was cancelled (its deadline passed) while the charge was under way.
    provider.refund(reference=result.reference, amount=current.amount, idempotency_key=f"{current.idempotency_key}-r")
    with transaction.atomic():
        _payment_attempt_end(current, PaymentAttempt.Status.REFUNDED, result.reference)
    raise InvalidTransition(f"The order was {locked.status} while it was being paid; the payment is refunded.")


def _payment_attempt_end(attempt: PaymentAttempt, status: PaymentAttempt.Status, reference: str) -> None:
    PaymentAttempt.objects.filter(pk=attempt.pk, status=PaymentAttempt.Status.STARTED).update(
        status=status, reference=reference, updated_at=timezone.now()
    )


def payments_complete_stale(*, older_than_seconds: float) -> int:
    """Complete charges whose request never recorded the answer. Returns how many it completed."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    completed = 0
    stale = PaymentAttempt.objects.filter(status=PaymentAttempt.Status.STARTED, updated_at__lte=cutoff)
    for attempt in stale.select_related("order")[:100]:
        with contextlib.suppress(InvalidTransition, PaymentDeclined):  # Refunded or declined: settled too.
            payment_complete(attempt=attempt)
        completed += 1
    return completed


def order_cancel(*, order: Order, actor: AbstractBaseUser | None, reason: str, expired_only: bool = False) -> Order:
    """Cancel an order awaiting payment and give its units back, exactly once.

    While its sale is open the units return to the sale, in the database and in Redis; after
    the sale closed, to available stock. With `expired_only`, an order whose deadline has not
    passed is left alone (InvalidTransition). Raises InvalidTransition when the order is not
    awaiting payment.
    """
    with transaction.atomic():
        locked = _lock_order(order)
        if expired_only and locked.pay_by > timezone.now():
            raise InvalidTransition("The order is still within its time to pay.")
        if locked.status != Order.Status.PENDING_PAYMENT:
            raise InvalidTransition(f"An order that is {locked.status} cannot be cancelled.")
        order_transition(order=locked, to=Order.Status.CANCELLED, actor=actor, reason=reason)
        back_on_sale = False
        if locked.flash_sale_id is not None:
            sale = FlashSale.objects.select_for_update().get(pk=locked.flash_sale_id)
            FlashSale.objects.filter(pk=sale.pk).update(units_sold=F("units_sold") - locked.quantity)
            back_on_sale = sale.status in OPEN_STATUSES
        if back_on_sale:
            # Before commit, under the sale's row lock, which reconciliation takes too: it sees
            # the units back in both places or in neither, so it cannot count them twice. Should
            # the commit then fail, Redis offers units the database lacks: the writer refuses
            # them as sold out without giving them back, and reconciliation repairs the count.
            _release_to_sale(sale_id=sale.pk, user_id=locked.user_id, quantity=locked.quantity)
        else:
            stock_release(
                stock=locked.sku.stock,
                quantity=locked.quantity,
                actor=actor,
                reason=f"Order cancelled: {reason}",
                reference=f"order:{locked.pk}",
            )
    if back_on_sale:
        sale_gate_reopen(locked.flash_sale_id)
    return locked


def order_fulfil(*, order: Order, actor: AbstractBaseUser | None) -> Order:
    return order_transition(order=order, to=Order.Status.FULFILLED, actor=actor, reason="fulfilled")


def order_refund(*, order: Order, actor: AbstractBaseUser | None, reason: str) -> Order:
    """A paid order is refunded and its units come back to stock."""
    with transaction.atomic():
        locked = _lock_order(order)
        order_transition(order=locked, to=Order.Status.REFUNDED, actor=actor, reason=reason)
        stock_return(
            stock=locked.sku.stock, quantity=locked.quantity, actor=actor, reason=f"Refund: {reason}",
            reference=f"order:{locked.pk}",
        )  # fmt: skip
    return locked


def orders_expire_unpaid(*, limit: int = 500) -> int:
    """Cancel unpaid orders past their deadline. Returns how many this call cancelled."""
    due = Order.objects.filter(status=Order.Status.PENDING_PAYMENT, pay_by__lte=timezone.now()).order_by("pay_by")
    cancelled = 0
    for order in due[:limit]:
        try:
            order_cancel(order=order, actor=None, reason="payment timeout", expired_only=True)
        except InvalidTransition:
            continue  # Paid or cancelled meanwhile.
        cancelled += 1
    return cancelled


def _release_to_sale(*, sale_id: int, user_id: int, quantity: int) -> None:
    """Units back on offer in Redis. If Redis is unreachable, reconciliation repairs it."""
    try:
        redis_sales.sale_release_units(sale_id=sale_id, user_id=user_id, quantity=quantity)
    except redis.RedisError:
        logger.exception("could not return %s units of sale %s to Redis; reconciliation will", quantity, sale_id)


# --- Admission ---------------------------------------------------------------------------------


def purchase_admit(
    *, sale_id: int, user_id: int, quantity: int, idempotency_key: str, limits: Sequence[Limit] = ()
) -> str:
    """Admit a purchase attempt in Redis, in one round trip in the usual case.

    `limits` are the attempt's shared rate limits, taken by the admission script itself.
    Returns the reservation id. Raises PurchaseRefused (with the reason), IdempotencyKeyReused
    when the key came with another quantity before, RateLimited, SaleNotFound for an unknown
    sale, and SaleLayerUnavailable when Redis cannot be reached. Every answer is counted by
    outcome, whichever door (API or storefront) the attempt came through.
    """
    try:
        reservation_id = _purchase_admit(
            sale_id=sale_id, user_id=user_id, quantity=quantity, idempotency_key=idempotency_key, limits=limits
        )
    except FlashSale.DoesNotExist as error:
        PURCHASE_OUTCOMES.labels(SaleNotFound.code).inc()
        raise SaleNotFound() from error
    except DomainError as error:
        PURCHASE_OUTCOMES.labels(error.code).inc()
        raise
    PURCHASE_OUTCOMES.labels("accepted").inc()
    return reservation_id


def _purchase_admit(*, sale_id: int, user_id: int, quantity: int, idempotency_key: str, limits: Sequence[Limit]) -> str:
    from orders.tasks import order_writer_drain  # Here, not at the top: tasks import this module.

    if settings.PURCHASE_ADMISSION == "database":
        return purchase_admit_database(
            sale_id=sale_id, user_id=user_id, quantity=quantity, idempotency_key=idempotency_key
        )
    refusal = sale_gate.refusal(sale_id)
    try:
        if refusal:
            # The sale is closed to newcomers; only a repeat of an earlier request gets its own
            # first answer. The gate's answers never extend the gate.
            admission = redis_breaker.call(
                lambda: redis_sales.admission_replay(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key)
            )
            if admission is None:
                raise PurchaseRefused(refusal)
        else:
            admission = redis_breaker.call(
                lambda: _admit(
                    sale_id=sale_id, user_id=user_id, quantity=quantity, idempotency_key=idempotency_key, limits=limits
                )
            )
            if not admission.replayed:
                # Only a fresh answer closes the gate: a replayed one may be stale.
                sale_gate.close(sale_id, admission.outcome)
    except redis.RedisError as error:
        if refusal:
            raise PurchaseRefused(refusal) from error
        if settings.PURCHASE_DATABASE_FALLBACK:
            return purchase_admit_database(
                sale_id=sale_id, user_id=user_id, quantity=quantity, idempotency_key=idempotency_key
            )
        raise SaleLayerUnavailable() from error
    if admission.replayed and admission.quantity != quantity:
        raise IdempotencyKeyReused()
    if admission.outcome == "rate_limited":
        raise RateLimited(admission.retry_after)
    if admission.outcome == "blocked":
        raise AccountBlocked()
    if admission.outcome != "accepted":
        raise PurchaseRefused(admission.outcome)
    if admission.schedule_drain:
        try:
            order_writer_drain.apply_async(args=[sale_id], retry=False)
        except (KombuError, OSError):
            logger.warning("could not schedule the order writer for sale %s; the sweep will drain it", sale_id)
    return admission.reservation_id


def _admit(
    *, sale_id: int, user_id: int, quantity: int, idempotency_key: str, limits: Sequence[Limit]
) -> redis_sales.Admission:
    def attempt() -> redis_sales.Admission:
        return redis_sales.reservation_admit(
            sale_id=sale_id,
            user_id=user_id,
            quantity=quantity,
            reservation_id=reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key),
            idempotency_key=idempotency_key,
            request_id=request_id_var.get(),
            limits=limits,
        )

    admission = attempt()
    if admission.outcome != "not_loaded":
        return admission
    # Not in Redis: not preheated yet, or Redis lost it. The database decides.
    sale = FlashSale.objects.get(pk=sale_id)
    if flash_sale_should_be_loaded(sale=sale, now=timezone.now()):
        flash_sale_preheat(sale=sale)
        admission = attempt()
        if admission.outcome == "not_loaded":  # Another process is loading it right now.
            raise SaleLayerUnavailable()
        return admission
    outcome = "not_started" if sale.status == FlashSale.Status.SCHEDULED else "ended"
    return redis_sales.Admission(outcome, "", False, False, quantity)


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
        pending = redis_sales.reservation_is_pending(sale_id=ref.sale_id, reservation_id=reservation_id)
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
        # The sale's row lock orders this after any batch a writer is committing: that batch's
        # order is then seen here, or this record is seen by the batch.
        sale = FlashSale.objects.select_for_update().filter(pk=sale_id).first()
        found = _result_in_database(reservation_id)
        if found:
            return found
        if sale is not None:
            FailedReservation.objects.create(
                reservation_id=reservation_id,
                flash_sale=sale,
                user_id=user_id,
                quantity=0,
                reason=FailedReservation.Reason.LOST,
            )
    return PurchaseResult(reservation_id, "failed", reason=FailedReservation.Reason.LOST)


# --- The order writer --------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    written: int = 0
    failed: int = 0
    skipped: int = 0


def _decide(
    *, sale: FlashSale, entries: list[StreamReservation]
) -> tuple[list[StreamReservation], list[FailedReservation]]:
    """Which new reservations of a sale (whose row the caller has locked) become orders, and
    the refusals of the others.

    Writes nothing; the database's view (units sold, each user's orders, the accounts)
    decides. Sold out is judged first: a refusal for any other reason means the database had
    room for the units, so Redis may offer them again.
    """
    user_ids = {entry.user_id for entry in entries}
    active = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "is_active"))
    held = order_units_by_user(flash_sale_id=sale.pk, user_ids=user_ids)
    # A closed sale has released its unsold units already; nothing more can be written.
    closed = sale.status not in OPEN_STATUSES
    room = sale.remaining
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


def _write_orders(
    *, sale: FlashSale, accepted: list[StreamReservation], admission: Order.Admission = Order.Admission.REDIS
) -> dict[str, int]:
    """Write the orders of accepted reservations of a sale whose row the caller has locked.
    Returns their ids by reservation id."""
    if not accepted:
        return {}
    units = sum(entry.quantity for entry in accepted)
    now = timezone.now()
    # One guarded update of the hot row per batch; the CHECK constraint backs it up.
    counted = FlashSale.objects.filter(pk=sale.pk, units_sold__lte=F("quantity") - units).update(
        units_sold=F("units_sold") + units, updated_at=now
    )
    if not counted:
        raise IntegrityError(f"flash sale {sale.pk} has no room for {units} more units")
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
        return dict(cursor.fetchall())


def order_write_batch(*, sale_id: int, entries: list[StreamReservation]) -> BatchOutcome:
    """Turn a batch of reservations into orders: one transaction, one counter update.

    Idempotent by reservation id: a redelivered batch writes nothing twice, and a request
    admitted twice (the same id in two entries) makes one order. A reservation the database
    refuses becomes a FailedReservation. After commit, one script acknowledges the batch and
    gives back to Redis what it holds for the reservations that made no order (GIVE_BACK).
    """
    give_back: dict[str, GiveBack] = {}
    with transaction.atomic():
        # The sale's row lock serialises writers of one sale (and reconciliation), so the
        # "already settled" look below sees every batch committed before this one.
        sale = FlashSale.objects.select_for_update().get(pk=sale_id)
        settled = reservations_settled(reservation_ids={entry.reservation_id for entry in entries})
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
        accepted, failures = _decide(sale=sale, entries=todo)
        written = _write_orders(sale=sale, accepted=accepted)
        FailedReservation.objects.bulk_create(failures)
    reasons = {failure.reservation_id: failure.reason for failure in failures}
    for entry in todo:
        if entry.reservation_id in reasons:
            give_back[entry.entry_id] = GIVE_BACK[reasons[entry.reservation_id]]
    redis_sales.reservations_done(sale_id=sale_id, entries=entries, give_back=give_back)
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
            writer_logger.info("reservation written as order %s", order_id, extra={**context, "order_id": order_id})
        else:
            reason = failed[entry.reservation_id]
            writer_logger.info("reservation failed: %s", reason, extra={**context, "reason": reason})


REFUSAL_CODES = {
    FailedReservation.Reason.SOLD_OUT: "sold_out",
    FailedReservation.Reason.LIMIT_EXCEEDED: "limit_exceeded",
    FailedReservation.Reason.SALE_CLOSED: "ended",
}


def purchase_admit_database(*, sale_id: int, user_id: int, quantity: int, idempotency_key: str) -> str:
    """Admission and order in one PostgreSQL transaction, for when Redis is unreachable.

    Slower than the Redis path (every purchase takes the sale's row lock) but just as
    correct. The reservation id is the one the Redis path would have made for the same
    Idempotency-Key, so a repeat finds its order, or its refusal, which is remembered too.
    Redis's counters catch up at the next reconcile. Raises as purchase_admit does.
    """
    rid = reservation_id_new(sale_id=sale_id, user_id=user_id, idempotency_key=idempotency_key)
    with transaction.atomic():
        sale = FlashSale.objects.select_for_update().get(pk=sale_id)
        refusal = _database_answer(sale=sale, reservation_id=rid, user_id=user_id, quantity=quantity)
    if refusal:
        raise PurchaseRefused(refusal)
    return rid


def _database_answer(*, sale: FlashSale, reservation_id: str, user_id: int, quantity: int) -> str | None:
    """Under the sale's row lock: the first answer to this request if it had one, else a new
    one, written (an order, or the refusal remembered). Returns the refusal code or None."""
    # One query for both kinds of first answer: an order ("" for its code) or a refusal.
    answers = (
        Order.objects.filter(reservation_id=reservation_id)
        .order_by()
        .values_list("quantity", Value(""))
        .union(PurchaseRefusal.objects.filter(reservation_id=reservation_id).values_list("quantity", "code"))
    )
    first = next(iter(answers), None)
    if first is not None:
        if first[0] != quantity:
            raise IdempotencyKeyReused()
        return first[1] or None
    now = timezone.now()
    if sale.status == FlashSale.Status.SCHEDULED and now < sale.starts_at:
        code = "not_started"
    elif now >= sale.ends_at:
        code = "ended"
    else:
        entry = StreamReservation(entry_id="", reservation_id=reservation_id, user_id=user_id, quantity=quantity)
        accepted, failures = _decide(sale=sale, entries=[entry])
        if not failures:
            _write_orders(sale=sale, accepted=accepted, admission=Order.Admission.DATABASE)
            return None
        if failures[0].reason == FailedReservation.Reason.UNKNOWN_USER:
            raise AccountUnknown()
        if failures[0].reason == FailedReservation.Reason.ACCOUNT_INACTIVE:
            raise AccountBlocked()
        code = REFUSAL_CODES[failures[0].reason]
    PurchaseRefusal.objects.create(
        reservation_id=reservation_id, flash_sale=sale, user_id=user_id, quantity=quantity, code=code
    )
    return code


def order_writer_drain(*, sale_id: int, consumer: str) -> bool:
    """Write the sale's new reservations in batches until its stream is empty.

    Starts with what this consumer read before and could not write (the database was away),
    then takes new reservations. Bounded by ORDER_WRITER_MAX_BATCHES so that no task runs
    forever. Returns True when the stream was emptied, False when work is left for another run.
    """
    own_pending = True
    for _ in range(settings.ORDER_WRITER_MAX_BATCHES):
        entries = redis_sales.reservations_read(
            sale_id=sale_id, consumer=consumer, count=settings.ORDER_WRITER_BATCH_SIZE, own_pending=own_pending
        )
        if not entries and own_pending:
            own_pending = False
            continue
        if not entries:
            return True
        result = order_write_batch(sale_id=sale_id, entries=entries)
        logger.info("sale %s: wrote %s orders, %s failed, %s already written", sale_id, result.written,
                    result.failed, result.skipped)  # fmt: skip
    return False


def order_writer_reclaim(*, sale_id: int, consumer: str) -> int:
    """Write reservations a dead consumer left unacknowledged. Returns how many it took over."""
    taken = 0
    for _ in range(settings.ORDER_WRITER_MAX_BATCHES):
        entries = redis_sales.reservations_claim_stale(
            sale_id=sale_id,
            consumer=consumer,
            min_idle_ms=settings.ORDER_WRITER_RECLAIM_IDLE_MS,
            count=settings.ORDER_WRITER_BATCH_SIZE,
        )
        if not entries:
            break
        order_write_batch(sale_id=sale_id, entries=entries)
        taken += len(entries)
    return taken
