from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("orders/", views.order_list, name="list"),
    path("orders/<int:pk>/", views.order_detail, name="detail"),
    path("orders/<int:pk>/pay/", views.order_pay_view, name="pay"),
    path("orders/<int:pk>/cancel/", views.order_cancel_view, name="cancel"),
]
