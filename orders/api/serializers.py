from rest_framework import serializers

from orders.models import Order, Refund


class OrderOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Order
        fields = ["id", "sku", "flash_sale", "quantity", "unit_price", "total", "status", "created_at", "pay_by"]


class RefundInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=Refund.REASON_MAX_LENGTH)
