import django_filters

from shop.models import FlashSale


class FlashSaleFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FlashSale.Status.choices)

    class Meta:
        model = FlashSale
        fields = ["status"]
