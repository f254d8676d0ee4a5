import django_filters

from core.api.filters import StrictFilterSet
from orders.models import Order


class OrderFilter(StrictFilterSet):
    """Staff filters; for shoppers they only narrow their own orders further."""

    status = django_filters.ChoiceFilter(choices=Order.Status.choices)

    class Meta:
        model = Order
        fields = ["flash_sale", "status"]
