import django_filters

from core.api.filters import StrictFilterSet
from shop.models import FlashSale


class FlashSaleFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=FlashSale.Status.choices)

    class Meta:
        model = FlashSale
        fields = ["status"]
