from django.urls import path

from shop.api.views import FlashSaleDetailApi, FlashSaleListApi, ProductDetailApi, ProductListApi

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="product-list"),
    path("products/<slug:slug>/", ProductDetailApi.as_view(), name="product-detail"),
    path("flash-sales/", FlashSaleListApi.as_view(), name="flash-sale-list"),
    path("flash-sales/<int:pk>/", FlashSaleDetailApi.as_view(), name="flash-sale-detail"),
]
