from rest_framework import generics, permissions

from orders.api.filters import OrderFilter
from orders.api.serializers import OrderOutputSerializer
from orders.selectors import order_list_visible_to


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
