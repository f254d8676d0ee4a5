from django.urls import path

from orders.api.views import OrderDetailApi, OrderListApi

urlpatterns = [
    path("orders/", OrderListApi.as_view(), name="order-list"),
    path("orders/<int:pk>/", OrderDetailApi.as_view(), name="order-detail"),
]
