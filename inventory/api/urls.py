from django.urls import path

from inventory.api import views

urlpatterns = [
    path("inventory/stock/", views.StockListApi.as_view(), name="stock-list"),
    path("inventory/stock/<str:sku>/in/", views.StockReceiveApi.as_view(), name="stock-in"),
    path("inventory/stock/<str:sku>/out/", views.StockIssueApi.as_view(), name="stock-out"),
    path("inventory/stock/<str:sku>/adjust/", views.StockAdjustApi.as_view(), name="stock-adjust"),
    path("inventory/movements/", views.StockMovementListApi.as_view(), name="stock-movement-list"),
    path("inventory/alerts/", views.StockAlertListApi.as_view(), name="stock-alert-list"),
    path("inventory/alerts/<int:pk>/acknowledge/", views.StockAlertAcknowledgeApi.as_view(), name="stock-alert-ack"),
]
