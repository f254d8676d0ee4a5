from django.urls import path

from shop import views

app_name = "shop"
urlpatterns = [
    path("", views.home, name="home"),
    path("sales/<int:pk>/", views.sale_detail, name="sale"),
    path("sales/<int:pk>/state/", views.sale_state, name="state"),
]
