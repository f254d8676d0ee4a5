import django_filters
from django.db.models import F

from core.api.filters import StrictFilterSet, TrueFalseFilter
from inventory.models import Stock, StockAlert, StockMovement


class StockFilter(StrictFilterSet):
    low = TrueFalseFilter(method="filter_low", label="Only stock at or below its low-stock threshold")

    class Meta:
        model = Stock
        fields = ["low"]

    def filter_low(self, queryset, name, value):
        at_or_below = {"available_units__lte": F("low_stock_threshold")}
        return queryset.filter(**at_or_below) if value == "true" else queryset.exclude(**at_or_below)


class StockMovementFilter(StrictFilterSet):
    sku = django_filters.CharFilter(field_name="stock__sku__code", max_length=64)
    kind = django_filters.ChoiceFilter(choices=StockMovement.Kind.choices)

    class Meta:
        model = StockMovement
        fields = ["sku", "kind"]


class StockAlertFilter(StrictFilterSet):
    open = TrueFalseFilter(method="filter_open")

    class Meta:
        model = StockAlert
        fields = ["open"]

    def filter_open(self, queryset, name, value):
        return queryset.filter(closed_at__isnull=value == "true")
