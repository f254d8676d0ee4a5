from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, Sum

from orders.models import FailedReservation, Order


def order_list_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff see every order; a shopper sees their own; an anonymous visitor none."""
    orders = Order.objects.select_related("sku", "flash_sale")
    if not user.is_authenticated:
        return orders.none()
    return orders if user.is_staff else orders.filter(user=user)


def order_units_by_user(*, flash_sale_id: int, user_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Units each user holds in a sale's orders that are not cancelled."""
    orders = Order.objects.filter(flash_sale_id=flash_sale_id).exclude(status=Order.Status.CANCELLED)
    if user_ids is not None:
        orders = orders.filter(user_id__in=list(user_ids))
    return dict(orders.values("user_id").annotate(units=Sum("quantity")).values_list("user_id", "units"))


def reservation_ids_known(*, reservation_ids: Iterable[str]) -> set[str]:
    """Those of the ids that already ended as an order or a failed result."""
    ids = list(reservation_ids)
    orders = Order.objects.filter(reservation_id__in=ids).values_list("reservation_id", flat=True)
    failed = FailedReservation.objects.filter(reservation_id__in=ids).values_list("reservation_id", flat=True)
    return set(orders) | set(failed)
