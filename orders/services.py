import contextlib
import ipaddress
import logging
import uuid
from datetime import datetime, timedelta

import redis
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate_reopen
from inventory.services import stock_release, stock_return, stock_sell
from orders.blocks import block_list, purchase_blocks_publish
from orders.emails import EMAIL_OF_STATUS, order_emails_schedule
from orders.exceptions import (
    InvalidBlock,
    InvalidReason,
    InvalidTransition,
    PaymentDeclined,
    RefundDeclined,
)
from orders.models import (
    ALLOWED_TRANSITIONS,
    Order,
    OrderTransition,
    PaymentAttempt,
    PurchaseBlock,
    Refund,
)
from orders.payments import payment_provider
from orders.writer import shard_lock
from shop.models import FlashSale, FlashSaleShard

logger = logging.getLogger(__name__)


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
        # The shopper hears of it, but of a cancel they made themselves.
        by_shopper = to == Order.Status.CANCELLED and actor is not None and actor.pk == order.user_id
        if to in EMAIL_OF_STATUS and not by_shopper:
            order_emails_schedule(order_ids=[order.pk], kind=EMAIL_OF_STATUS[to])
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
        # The shop's lock order (docs/locking.md): the sale's row, its shard's, then the order's.
        # An order's sale and shopper never change, so the unlocked instance names them.
        sale = FlashSale.objects.locked().get(pk=order.flash_sale_id) if order.flash_sale_id else None
        if sale is not None:
            shard = shard_lock(sale_id=sale.pk, shard=redis_sales.home_shard(order.user_id, sale.stock_shards))
        locked = _lock_order(order)
        if expired_only and locked.pay_by > timezone.now():
            raise InvalidTransition("The order is still within its time to pay.")
        if locked.status != Order.Status.PENDING_PAYMENT:
            raise InvalidTransition(f"An order that is {locked.status} cannot be cancelled.")
        order_transition(order=locked, to=Order.Status.CANCELLED, actor=actor, reason=reason)
        back_on_sale = False
        if sale is not None:
            FlashSaleShard.objects.filter(pk=shard.pk).update(units_sold=F("units_sold") - locked.quantity)
            back_on_sale = sale.status in FlashSale.OPEN_STATUSES
        if back_on_sale:
            # Before commit, under the sale's row lock, which reconciliation takes too: it sees
            # the units back in both places or in neither, so it cannot count them twice. Should
            # the commit then fail, Redis offers units the database lacks: the writer refuses
            # them as sold out without giving them back, and reconciliation repairs the count.
            _release_to_sale(sale=sale, user_id=locked.user_id, quantity=locked.quantity)
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
    """A paid order is refunded: the money at the provider, then its units back to stock with a
    `return` ledger row, and the refund recorded, all once.

    The provider is asked while the order's row is locked, so that of two staff refunding at
    once (or a refund racing a cancel) one wins and the other gets InvalidTransition. The
    provider's key is the order's own: if the shop fails to record a refund the provider made
    (a crash before commit), the next try asks again with the same key and the provider answers
    it without refunding twice. Raises InvalidReason, InvalidTransition, RefundDeclined.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidReason()
    if len(reason) > Refund.REASON_MAX_LENGTH:
        raise InvalidReason(f"Keep the reason to {Refund.REASON_MAX_LENGTH} characters or fewer.")
    with transaction.atomic():
        locked = _lock_order(order)
        if Order.Status.REFUNDED not in ALLOWED_TRANSITIONS[locked.status]:
            raise InvalidTransition(f"An order that is {locked.status} cannot be refunded.")
        charge = locked.payment_attempts.filter(status=PaymentAttempt.Status.SUCCEEDED).first()
        key = f"refund-order-{locked.pk}"
        result = payment_provider().refund(
            reference=charge.reference if charge else "", amount=locked.total, idempotency_key=key
        )
        if not result.approved:
            raise RefundDeclined(f"The payment provider refused the refund: {result.message or 'no reason given'}.")
        order_transition(order=locked, to=Order.Status.REFUNDED, actor=actor, reason=reason)
        Refund.objects.create(
            order=locked,
            amount=locked.total,
            reason=reason,
            actor=actor,
            idempotency_key=key,
            reference=result.reference,
        )
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
            order_cancel(order=order, actor=None, reason="not paid in time", expired_only=True)
        except InvalidTransition:
            continue  # Paid or cancelled meanwhile.
        cancelled += 1
    return cancelled


def _release_to_sale(*, sale: FlashSale, user_id: int, quantity: int) -> None:
    """Units back on offer in Redis, in the shopper's home shard. If Redis is unreachable,
    reconciliation repairs it."""
    try:
        redis_sales.sale_release_units(
            sale_id=sale.pk,
            user_id=user_id,
            quantity=quantity,
            shard=redis_sales.home_shard(user_id, sale.stock_shards),
            shards=sale.stock_shards,
        )
    except redis.RedisError:
        logger.exception("could not return %s units of sale %s to Redis; reconciliation will", quantity, sale.pk)


# --- Purchase blocks ---------------------------------------------------------------------------


def purchase_block_terms_check(
    *, account: AbstractBaseUser | None, network: str, reason: str, expires_at: datetime | None
) -> str:
    """The network in its normal form ("" for an account's block). Raises InvalidBlock: not
    exactly one of account and network, a network that is no address or range, no reason, an
    expiry in the past."""
    network = network.strip()
    if (account is None) == (not network):
        raise InvalidBlock("Block either an account or a network, one of the two.")
    if not reason.strip():
        raise InvalidBlock("Say why: a reason is required.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidBlock("The expiry must be in the future (or empty: until lifted).")
    if not network:
        return ""
    try:
        return str(ipaddress.ip_network(network, strict=False))
    except ValueError as error:
        raise InvalidBlock(f"{network!r} is not an address or a network in CIDR form.") from error


def purchase_block_create(
    *,
    actor: AbstractBaseUser | None,
    reason: str,
    account: AbstractBaseUser | None = None,
    network: str = "",
    flash_sale: FlashSale | None = None,
    expires_at: datetime | None = None,
) -> PurchaseBlock:
    """Keep an account, or the addresses of a network, from buying in one sale (or in all, with
    no `flash_sale`) until `expires_at` (or until lifted). Every web process refuses it within
    PURCHASE_BLOCKS_REFRESH_SECONDS. Raises InvalidBlock (see `purchase_block_terms_check`)."""
    network = purchase_block_terms_check(account=account, network=network, reason=reason, expires_at=expires_at)
    with transaction.atomic():
        block = PurchaseBlock.objects.create(
            account=account, network=network, flash_sale=flash_sale, reason=reason.strip(), expires_at=expires_at,
            created_by=actor,
        )  # fmt: skip
        transaction.on_commit(_purchase_blocks_changed)
    return block


def purchase_block_lift(*, block: PurchaseBlock, actor: AbstractBaseUser | None) -> bool:
    """End a block before its expiry; it stays on record. Returns whether it was in force."""
    now = timezone.now()
    with transaction.atomic():
        lifted = PurchaseBlock.objects.in_force(now).filter(pk=block.pk).update(lifted_at=now, lifted_by=actor)
        transaction.on_commit(_purchase_blocks_changed)
    return bool(lifted)


def _purchase_blocks_changed() -> None:
    try:
        purchase_blocks_publish()
    except redis.RedisError:
        logger.warning("could not publish the purchase blocks; beat publishes them within a minute")
    block_list.forget()
