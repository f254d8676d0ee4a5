from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.idempotency import IDEMPOTENCY_KEY_HEADER, idempotent
from core.api.permissions import staff_with
from inventory.api.filters import StockAlertFilter, StockFilter, StockMovementFilter
from inventory.api.serializers import (
    StockAdjustInputSerializer,
    StockAlertOutputSerializer,
    StockMoveInputSerializer,
    StockMovementOutputSerializer,
    StockOutputSerializer,
)
from inventory.selectors import stock_alert_list, stock_list, stock_movement_list
from inventory.services import stock_adjust, stock_alert_acknowledge, stock_issue, stock_receive


def stock_output(stock) -> dict:
    return StockOutputSerializer(stock_list().get(pk=stock.pk)).data


class StockListApi(generics.ListAPIView):
    permission_classes = [staff_with("inventory.view_stock")]
    serializer_class = StockOutputSerializer
    filterset_class = StockFilter

    def get_queryset(self):
        return stock_list()


class StockMoveApi(APIView):
    permission_classes = [staff_with("inventory.change_stock")]
    """Receive or issue units of one SKU; `service` says which."""

    service = None  # A service taking stock, quantity, actor and reason.

    @extend_schema(
        request=StockMoveInputSerializer, parameters=[IDEMPOTENCY_KEY_HEADER], responses={200: StockOutputSerializer}
    )
    @idempotent
    def post(self, request, sku: str):
        stock = get_object_or_404(stock_list(), sku__code=sku)
        serializer = StockMoveInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.service(stock=stock, actor=request.user, **serializer.validated_data)
        return Response(stock_output(stock))


class StockReceiveApi(StockMoveApi):
    service = staticmethod(stock_receive)


class StockIssueApi(StockMoveApi):
    service = staticmethod(stock_issue)


class StockAdjustApi(APIView):
    permission_classes = [staff_with("inventory.change_stock")]

    @extend_schema(
        request=StockAdjustInputSerializer, parameters=[IDEMPOTENCY_KEY_HEADER], responses={200: StockOutputSerializer}
    )
    @idempotent
    def post(self, request, sku: str):
        stock = get_object_or_404(stock_list(), sku__code=sku)
        serializer = StockAdjustInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        stock_adjust(
            stock=stock,
            on_hand=data["on_hand"],
            expected_version=data["version"],
            actor=request.user,
            reason=data["reason"],
        )
        return Response(stock_output(stock))


class StockMovementListApi(generics.ListAPIView):
    permission_classes = [staff_with("inventory.view_stockmovement")]
    serializer_class = StockMovementOutputSerializer
    filterset_class = StockMovementFilter

    def get_queryset(self):
        return stock_movement_list()


class StockAlertListApi(generics.ListAPIView):
    permission_classes = [staff_with("inventory.view_stockalert")]
    serializer_class = StockAlertOutputSerializer
    filterset_class = StockAlertFilter

    def get_queryset(self):
        return stock_alert_list()


class StockAlertAcknowledgeApi(APIView):
    permission_classes = [staff_with("inventory.change_stockalert")]

    @extend_schema(request=None, responses={200: StockAlertOutputSerializer})
    def post(self, request, pk: int):
        alert = get_object_or_404(stock_alert_list(), pk=pk)
        alert = stock_alert_acknowledge(alert=alert, actor=request.user)
        return Response(StockAlertOutputSerializer(alert).data)
