from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from core.api.fields import StrictIntegerField
from shop.exceptions import InvalidWaitingRoom, InvalidWaves
from shop.models import MAX_STOCK_SHARDS, SKU, FlashSale, Product, Wave
from shop.services import WAITING_ROOM_TERMS, WAVE_TERMS, flash_sale_waiting_room_check, flash_sale_waves_check


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


class WaveSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    units = StrictIntegerField(min_value=1, max_value=1_000_000)


class FlashSaleOutputSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(slug_field="code", read_only=True)
    product = serializers.SlugRelatedField(source="sku.product", slug_field="slug", read_only=True)
    remaining = serializers.SerializerMethodField(help_text="Units on offer now, not counting waves to come.")
    shards = serializers.IntegerField(source="stock_shards", read_only=True)
    waves = WaveSerializer(source="wave_list", many=True, read_only=True)
    next_wave_at = serializers.SerializerMethodField()

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
            "version",
            "shards",
            "waves",
            "next_wave_at",
            "requires_pass",
            "pass_challenge",
            "waiting_room_opens_at",
            "let_through_per_second",
        ]

    def get_remaining(self, sale: FlashSale) -> int:
        return max(0, sale.remaining - sale.units_held_back(timezone.now()))

    def get_next_wave_at(self, sale: FlashSale) -> datetime | None:
        return sale.next_wave_at(timezone.now())


class FlashSaleEditInputSerializer(serializers.Serializer):
    version = StrictIntegerField(min_value=1)
    ends_at = serializers.DateTimeField(required=False)
    quantity = StrictIntegerField(min_value=1, max_value=1_000_000, required=False)
    per_user_limit = StrictIntegerField(min_value=1, max_value=1_000, required=False)


class FlashSaleCreateInputSerializer(serializers.Serializer):
    sku = serializers.SlugRelatedField(slug_field="code", queryset=SKU.objects.all())
    title = serializers.CharField(max_length=200, required=False, default="")
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"))
    quantity = StrictIntegerField(min_value=1, max_value=1_000_000)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    per_user_limit = StrictIntegerField(min_value=1, max_value=1_000)
    shards = StrictIntegerField(
        min_value=1, max_value=MAX_STOCK_SHARDS, required=False, default=1, source="stock_shards"
    )
    waves = WaveSerializer(many=True, required=False)
    requires_pass = serializers.BooleanField(
        required=False, default=False, help_text="Purchases must carry a pass from POST .../pass/."
    )
    waiting_room_opens_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Shoppers who come from then wait in line (POST .../queue/) and are drawn in a random order "
        "at the start.",
    )
    let_through_per_second = StrictIntegerField(
        min_value=1, max_value=settings.WAITING_ROOM_MAX_LET_THROUGH, required=False, default=100
    )
    pass_challenge = serializers.BooleanField(
        required=False,
        default=False,
        help_text="A pass is issued only against a solved proof of work (implies requires_pass).",
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        if attrs["ends_at"] <= timezone.now():
            raise serializers.ValidationError({"ends_at": ["Must be in the future."]})
        attrs["waves"] = [Wave(wave["at"], wave["units"]) for wave in attrs.get("waves", [])]
        try:
            flash_sale_waves_check(**{term: attrs[term] for term in WAVE_TERMS})
        except InvalidWaves as error:
            raise serializers.ValidationError({"waves": [str(error)]}) from error
        try:
            flash_sale_waiting_room_check(**{term: attrs[term] for term in WAITING_ROOM_TERMS})
        except InvalidWaitingRoom as error:
            raise serializers.ValidationError({"waiting_room_opens_at": [str(error)]}) from error
        return attrs


class FlashSaleStatsSerializer(serializers.Serializer):
    quantity = serializers.IntegerField()
    remaining_cache = serializers.IntegerField(allow_null=True)
    pending = serializers.IntegerField()
    orders_confirmed = serializers.IntegerField()
    orders_paid = serializers.IntegerField()
    orders_cancelled = serializers.IntegerField()
    units_sold = serializers.IntegerField()
    consistent = serializers.BooleanField()


class PreheatOutputSerializer(serializers.Serializer):
    remaining = serializers.IntegerField()
