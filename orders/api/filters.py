import django_filters

from orders.models import Order


class OrderFilter(django_filters.FilterSet):
    """Staff filters; for shoppers they only narrow their own orders further."""

    status = django_filters.ChoiceFilter(choices=Order.Status.choices)

    class Meta:
        model = Order
        fields = ["flash_sale", "status"]
