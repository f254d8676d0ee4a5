from rest_framework import serializers

from shop.models import SKU, FlashSale, Product


class SKUOutputSerializer(serializers.ModelSerializer):
    available = serializers.SerializerMethodField()

    class Meta:
        model = SKU
        fields = ["code", "attributes", "price", "available"]

    def get_available(self, sku: SKU) -> int:
        stock = getattr(sku, "stock", None)
        return stock.available if stock is not None else 0


class ProductOutputSerializer(serializers.ModelSerializer):
    skus = SKUOutputSerializer(many=True)

    class Meta:
        model = Product
        fields = ["slug", "name", "description", "skus"]


class FlashSaleOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)
    product = serializers.SlugRelatedField(source="sku.product", slug_field="slug", read_only=True)
    remaining = serializers.IntegerField(read_only=True)

    class Meta:
        model = FlashSale
        fields = [
            "id",
            "title",
            "sku",
            "product",
            "price",
            "quantity",
            "remaining",
            "starts_at",
            "ends_at",
            "per_user_limit",
            "status",
        ]
