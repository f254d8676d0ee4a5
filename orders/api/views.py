from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import staff_with
from orders.api.filters import OrderFilter
from orders.api.serializers import OrderOutputSerializer, RefundInputSerializer
from orders.models import Order
from orders.selectors import order_list_visible_to
from orders.services import order_cancel, order_pay, order_refund


class OrderListApi(generics.ListAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = OrderOutputSerializer
    filterset_class = OrderFilter

    def get_queryset(self):
        return order_list_visible_to(user=self.request.user)


class OrderDetailApi(generics.RetrieveAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = OrderOutputSerializer

    def get_queryset(self):
        return order_list_visible_to(user=self.request.user)


class OrderPayApi(APIView):
    """The owner pays; staff cannot pay on a shopper's behalf."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={200: OrderOutputSerializer})
    def post(self, request, pk: int):
        order = get_object_or_404(order_list_visible_to(user=request.user), pk=pk, user=request.user)
        return Response(OrderOutputSerializer(order_pay(order=order, actor=request.user)).data)


class OrderCancelApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={200: OrderOutputSerializer})
    def post(self, request, pk: int):
        order = get_object_or_404(order_list_visible_to(user=request.user), pk=pk)
        someone_elses = order.user_id != request.user.pk
        if someone_elses and not request.user.has_perm("orders.change_order"):
            raise PermissionDenied()
        who = "staff" if someone_elses else "customer"
        return Response(
            OrderOutputSerializer(order_cancel(order=order, actor=request.user, reason=f"cancelled by {who}")).data
        )


class OrderRefundApi(APIView):
    """Staff with the refund permission refund a paid order: money, then units back to stock."""

    permission_classes = [staff_with("orders.refund_order")]

    @extend_schema(request=RefundInputSerializer, responses={200: OrderOutputSerializer})
    def post(self, request, pk: int):
        serializer = RefundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = get_object_or_404(Order, pk=pk)
        refunded = order_refund(order=order, actor=request.user, reason=serializer.validated_data["reason"])
        return Response(OrderOutputSerializer(refunded).data)
