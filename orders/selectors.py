from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from orders.models import Order


def order_list_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff see every order; a shopper sees their own; an anonymous visitor none."""
    orders = Order.objects.select_related("sku", "flash_sale")
    if not user.is_authenticated:
        return orders.none()
    return orders if user.is_staff else orders.filter(user=user)
