from django.urls import path

from purchase.api import views

urlpatterns = [
    path("flash-sales/<int:pk>/queue/", views.FlashSaleQueueApi.as_view(), name="flash-sale-queue"),
    path("flash-sales/<int:pk>/pass/", views.FlashSalePassApi.as_view(), name="flash-sale-pass"),
    path("flash-sales/<int:pk>/purchase/", views.FlashSalePurchaseApi.as_view(), name="flash-sale-purchase"),
    path("purchases/<str:reservation_id>/", views.PurchaseResultApi.as_view(), name="purchase-result"),
]
