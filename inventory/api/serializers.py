from rest_framework import serializers

from core.api.fields import StrictIntegerField
from inventory.models import Stock, StockAlert, StockMovement

MAX_UNITS = 1_000_000


class StockOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = Stock
        fields = ["sku", "on_hand", "allocated", "available", "low_stock_threshold", "version"]


class StockMoveInputSerializer(serializers.Serializer):
    quantity = StrictIntegerField(min_value=1, max_value=MAX_UNITS)
    reason = serializers.CharField(max_length=255)


class StockAdjustInputSerializer(serializers.Serializer):
    on_hand = StrictIntegerField(min_value=0, max_value=MAX_UNITS)
    version = StrictIntegerField(min_value=1)
    reason = serializers.CharField(max_length=255)


class StockMovementOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="stock.sku.code", read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = StockMovement
        fields = StockMovement.COLUMNS


class StockAlertOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="stock.sku.code", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    open = serializers.BooleanField(source="is_open", read_only=True)

    class Meta:
        model = StockAlert
        fields = [
            "id",
            "sku",
            "open",
            "available_at_open",
            "threshold_at_open",
            "opened_at",
            "acknowledged_at",
            "acknowledged_by",
            "closed_at",
        ]
