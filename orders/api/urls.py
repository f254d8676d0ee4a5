from django.urls import path

from orders.api import views

urlpatterns = [
    path("orders/", views.OrderListApi.as_view(), name="order-list"),
    path("orders/<int:pk>/", views.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:pk>/pay/", views.OrderPayApi.as_view(), name="order-pay"),
    path("orders/<int:pk>/cancel/", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:pk>/refund/", views.OrderRefundApi.as_view(), name="order-refund"),
]
