from django.conf import settings
from rest_framework import serializers

from core.api.fields import StrictIntegerField


class PurchaseInputSerializer(serializers.Serializer):
    quantity = StrictIntegerField(min_value=1, max_value=settings.PURCHASE_MAX_QUANTITY)


class PurchasePassInputSerializer(serializers.Serializer):
    challenge = serializers.CharField(
        required=False,
        max_length=2048,
        help_text="With the sale's pass_challenge: the solved challenge (ALTCHA's base64 payload). "
        "Without it the answer is 400 challenge_failed with a `challenge` to solve.",
    )


class QueuePlaceSerializer(serializers.Serializer):
    ticket = serializers.CharField(help_text="Send it as the Queue-Ticket header of the purchase.")
    position = serializers.IntegerField(
        allow_null=True, help_text="Place in line; null before the start, when the early arrivals are drawn."
    )
    estimated_wait_seconds = serializers.IntegerField()


class PurchaseAcceptedSerializer(serializers.Serializer):
    reservation_id = serializers.CharField()
    status = serializers.CharField()


class PurchaseResultSerializer(serializers.Serializer):
    reservation_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "confirmed", "failed"])
    order_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
