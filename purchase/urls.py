from django.urls import path

from purchase import views

app_name = "purchase"
urlpatterns = [
    path("sales/<int:pk>/buy/", views.sale_buy, name="buy"),
    path("purchases/<str:reservation_id>/", views.purchase_status, name="status"),
]
