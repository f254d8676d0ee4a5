from rest_framework import serializers

from orders.models import Order, Refund


class OrderOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Order
        fields = ["id", "sku", "flash_sale", "quantity", "unit_price", "total", "status", "created_at", "pay_by"]


class PurchaseResultSerializer(serializers.Serializer):
    reservation_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "confirmed", "failed"])
    order_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class RefundInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=Refund.REASON_MAX_LENGTH)
