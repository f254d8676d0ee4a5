from django.urls import path

from shop.api import views

urlpatterns = [
    path("products/", views.ProductListApi.as_view(), name="product-list"),
    path("products/<slug:slug>/", views.ProductDetailApi.as_view(), name="product-detail"),
    path("flash-sales/", views.FlashSaleListApi.as_view(), name="flash-sale-list"),
    path("flash-sales/<int:pk>/", views.FlashSaleDetailApi.as_view(), name="flash-sale-detail"),
    path("flash-sales/<int:pk>/preheat/", views.FlashSalePreheatApi.as_view(), name="flash-sale-preheat"),
    path("flash-sales/<int:pk>/stats/", views.FlashSaleStatsApi.as_view(), name="flash-sale-stats"),
]
