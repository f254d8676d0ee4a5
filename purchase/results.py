"""What became of a reservation: an order, a failure, still on its way, or lost by Redis."""

from dataclasses import dataclass

import redis
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inventory import redis_sales
from orders.models import FailedReservation, Order
from orders.writer import shard_lock
from purchase.reservations import reservation_id_parse
from purchase.terms import flash_sale_terms
from shop.models import FlashSale


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
