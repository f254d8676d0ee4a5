"""The shopper's steps toward a purchase, over the API: a pass, a place in the waiting room, the
purchase itself, and what became of it."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.addresses import client_ip
from core.api.authentication import BearerTokenAuthentication
from core.api.idempotency import IDEMPOTENCY_KEY_HEADER, idempotency_key
from purchase.admission import purchase_admit, purchase_screen
from purchase.api.serializers import (
    PurchaseAcceptedSerializer,
    PurchaseInputSerializer,
    PurchasePassInputSerializer,
    PurchaseResultSerializer,
    QueuePlaceSerializer,
)
from purchase.exceptions import SaleNotFound
from purchase.passes import purchase_pass_issue
from purchase.results import purchase_result
from purchase.waiting_room import waiting_room_join
from shop.models import FlashSale


class ShopperApi(APIView):
    """A signed-in shopper's step toward a purchase: the shopper comes from the token alone (or
    the storefront's session), not from a database read."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated]


class FlashSalePassApi(ShopperApi):
    """A purchase pass for the signed-in shopper, for a sale that requires one (purchase/passes.py)."""

    @extend_schema(
        request=PurchasePassInputSerializer,
        responses={
            200: inline_serializer(
                "PurchasePass", {"pass": serializers.CharField(), "expires_at": serializers.DateTimeField()}
            ),
            400: OpenApiResponse(description="challenge_failed, with a fresh `challenge` to solve"),
            409: OpenApiResponse(description="too_early (with issued_from), pass_not_required or ended"),
        },
    )
    def post(self, request, pk: int):
        sale = get_object_or_404(FlashSale, pk=pk)
        serializer = PurchasePassInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = purchase_pass_issue(
            sale=sale, user_id=request.user.pk, solution=serializer.validated_data.get("challenge")
        )
        return Response({"pass": issued.token, "expires_at": issued.expires_at})


class FlashSaleQueueApi(ShopperApi):
    """The sale's waiting room: join it, or learn one's place again (orders/waiting_room.py)."""

    @extend_schema(
        request=None,
        responses={
            200: QueuePlaceSerializer,
            409: OpenApiResponse(description="too_early (with opens_at) or no_waiting_room"),
        },
    )
    def post(self, request, pk: int):
        try:
            place = waiting_room_join(sale_id=pk, user_id=request.user.pk)
        except FlashSale.DoesNotExist as error:
            raise SaleNotFound() from error
        return Response(QueuePlaceSerializer(place).data)


QUEUE_TICKET_HEADER = OpenApiParameter(
    "Queue-Ticket",
    location=OpenApiParameter.HEADER,
    required=False,
    description="The ticket from POST .../queue/, when the sale has a waiting room.",
)
PURCHASE_PASS_HEADER = OpenApiParameter(
    "Purchase-Pass",
    location=OpenApiParameter.HEADER,
    required=False,
    description="The pass from POST .../pass/, when the sale requires_pass.",
)


class FlashSalePurchaseApi(ShopperApi):
    """Admission only: Redis decides; the order is written later by the order writer. The user
    comes from the token alone, so that purchases keep being admitted into Redis while
    PostgreSQL restarts."""

    admit = staticmethod(purchase_admit)

    @extend_schema(
        request=PurchaseInputSerializer,
        parameters=[IDEMPOTENCY_KEY_HEADER, PURCHASE_PASS_HEADER, QUEUE_TICKET_HEADER],
        responses={
            202: PurchaseAcceptedSerializer,
            403: OpenApiResponse(description="purchase_pass_invalid or blocked"),
            409: OpenApiResponse(
                description="sold_out (with next_wave_at), limit_exceeded, not_started, ended, or not_your_turn "
                "(with position and estimated_wait_seconds)"
            ),
        },
    )
    def post(self, request, pk: int):
        # Screened before the rest is read, as the purchase door screens it (one answer to one
        # request, whichever door it came through).
        screened = purchase_screen(
            sale_id=pk,
            user_id=int(request.user.pk),
            purchase_pass=request.headers.get("Purchase-Pass"),
            queue_ticket=request.headers.get("Queue-Ticket"),
            address=client_ip(request),
        )
        key = idempotency_key(request, required=True)
        serializer = PurchaseInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reservation_id = self.admit(
            sale_id=pk,
            user_id=int(request.user.pk),
            quantity=serializer.validated_data["quantity"],
            idempotency_key=key,
            limits=getattr(request, "purchase_limits", ()),
            address=client_ip(request),
            screened=screened,
        )
        return Response({"reservation_id": reservation_id, "status": "pending"}, status=status.HTTP_202_ACCEPTED)


class PurchaseResultApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: PurchaseResultSerializer})
    def get(self, request, reservation_id: str):
        result = purchase_result(reservation_id=reservation_id, user=request.user)
        if result is None:
            raise NotFound("No such purchase.")
        return Response(PurchaseResultSerializer(result).data)
