from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, Sum
from django.utils import timezone

from orders.models import Order, Refund
from shop.models import FlashSale
from shop.selectors import flash_sale_list_on_offer


def order_list_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff allowed to view orders see every order; anyone else signed in their own; an
    anonymous visitor none."""
    orders = Order.objects.select_related("sku", "flash_sale")
    if not user.is_authenticated:
        return orders.none()
    return orders if user.is_staff and user.has_perm("orders.view_order") else orders.filter(user=user)


@dataclass(frozen=True)
class BackOfficeSummary:
    live_sales: list[FlashSale]
    upcoming_sales: list[FlashSale]
    orders_awaiting_payment: int
    revenue_today: Decimal


def back_office_summary(*, now: datetime) -> BackOfficeSummary:
    """The admin index's dashboard: sales live and coming, orders waiting to be paid, and the
    money taken today (orders paid since midnight, local time, less today's refunds)."""
    on_offer = flash_sale_list_on_offer()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    paid = Order.objects.filter(
        transitions__to_status=Order.Status.PAID, transitions__created_at__gte=midnight
    ).aggregate(total=Sum("total"))["total"] or Decimal("0")
    refunded = Refund.objects.filter(created_at__gte=midnight).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return BackOfficeSummary(
        live_sales=list(on_offer.filter(starts_at__lte=now)[:10]),
        upcoming_sales=list(on_offer.filter(starts_at__gt=now)[:5]),
        orders_awaiting_payment=Order.objects.filter(status=Order.Status.PENDING_PAYMENT).count(),
        revenue_today=paid - refunded,
    )
