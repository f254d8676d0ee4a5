from rest_framework import generics, permissions

from shop.api.filters import FlashSaleFilter
from shop.api.serializers import FlashSaleOutputSerializer, ProductOutputSerializer
from shop.selectors import flash_sale_list, product_list_active


class ProductListApi(generics.ListAPIView):
    permission_classes = [permissions.AllowAny]
    serializer_class = ProductOutputSerializer

    def get_queryset(self):
        return product_list_active()


class ProductDetailApi(generics.RetrieveAPIView):
    permission_classes = [permissions.AllowAny]
    serializer_class = ProductOutputSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return product_list_active()


class FlashSaleListApi(generics.ListAPIView):
    permission_classes = [permissions.AllowAny]
    serializer_class = FlashSaleOutputSerializer
    filterset_class = FlashSaleFilter

    def get_queryset(self):
        return flash_sale_list()


class FlashSaleDetailApi(generics.RetrieveAPIView):
    permission_classes = [permissions.AllowAny]
    serializer_class = FlashSaleOutputSerializer

    def get_queryset(self):
        return flash_sale_list()
