from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, Sum
from django.db.models.functions import Mod

from inventory.redis_sales import KEEP, GiveBack
from orders.models import FailedReservation, Order

# What Redis still holds for a reservation that ended without its units in an order, and so
# gives back when the writer finishes it: units back on offer when the database had room for
# them, the shopper's tally unless the database says they hold as much (over the limit).
# Sold out and closed: Redis had counted units the database does not have; they stay taken.
# Lost: Redis no longer holds anything for it.
GIVE_BACK = {
    FailedReservation.Reason.SOLD_OUT: GiveBack(units=False, tally=True),
    FailedReservation.Reason.SALE_CLOSED: GiveBack(units=False, tally=True),
    FailedReservation.Reason.LIMIT_EXCEEDED: GiveBack(units=True, tally=False),
    FailedReservation.Reason.UNKNOWN_USER: GiveBack(units=True, tally=True),
    FailedReservation.Reason.ACCOUNT_INACTIVE: GiveBack(units=True, tally=True),
    FailedReservation.Reason.LOST: KEEP,
}
# The second admission of one request (its id twice in the stream) holds units and a tally
# that no order uses.
DUPLICATE = GiveBack(units=True, tally=True)


def order_list_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff allowed to view orders see every order; anyone else signed in their own; an
    anonymous visitor none."""
    orders = Order.objects.select_related("sku", "flash_sale")
    if not user.is_authenticated:
        return orders.none()
    return orders if user.is_staff and user.has_perm("orders.view_order") else orders.filter(user=user)


def in_shard(queryset: QuerySet, *, shard: int, shards: int) -> QuerySet:
    """The rows of a sale's shoppers whose home is this stock shard (`redis_sales.home_shard`)."""
    if shards == 1:
        return queryset
    return queryset.alias(home_shard=Mod("user_id", shards)).filter(home_shard=shard)


def order_units_by_user(
    *, flash_sale_id: int, user_ids: Iterable[int] | None = None, shard: int = 0, shards: int = 1
) -> dict[int, int]:
    """Units each user (of one stock shard) holds in a sale's orders that are not cancelled."""
    orders = Order.objects.filter(flash_sale_id=flash_sale_id).exclude(status=Order.Status.CANCELLED)
    orders = in_shard(orders, shard=shard, shards=shards)
    if user_ids is not None:
        orders = orders.filter(user_id__in=list(user_ids))
    return dict(orders.values("user_id").annotate(units=Sum("quantity")).values_list("user_id", "units"))


def reservations_settled(*, reservation_ids: Iterable[str]) -> dict[str, GiveBack]:
    """Those of the ids that already ended as an order or a failed result, each with what Redis
    gives back for it when the writer finishes its stream entry."""
    ids = list(reservation_ids)
    if not ids:
        return {}
    # A Redis reservation whose request the database path wrote as an order (Redis was away
    # for a moment) makes no order of its own; Redis never counted the database path's order,
    # so its entry stands for that order's units instead of its own.
    settled = {
        rid: GiveBack(units=True, tally=True, less=quantity) if admission == Order.Admission.DATABASE else KEEP
        for rid, admission, quantity in Order.objects.filter(reservation_id__in=ids).values_list(
            "reservation_id", "admission", "quantity"
        )
    }
    for rid, reason in FailedReservation.objects.filter(reservation_id__in=ids).values_list("reservation_id", "reason"):
        settled[rid] = GIVE_BACK[reason]
    return settled


def reservation_units_by_id(*, flash_sale_id: int, shard: int = 0, shards: int = 1) -> dict[str, int]:
    """Units of every reservation of the sale (of one stock shard's shoppers) that the database
    has, as an order or a failure."""
    orders = in_shard(Order.objects.filter(flash_sale_id=flash_sale_id), shard=shard, shards=shards)
    failed = in_shard(FailedReservation.objects.filter(flash_sale_id=flash_sale_id), shard=shard, shards=shards)
    return {
        **dict(failed.values_list("reservation_id", "quantity")),
        **dict(orders.values_list("reservation_id", "quantity")),
    }
