from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.idempotency import IDEMPOTENCY_KEY_HEADER, idempotent
from core.api.permissions import anyone_reads_staff_with, staff_with
from shop.api.filters import FlashSaleFilter
from shop.api.serializers import (
    FlashSaleCreateInputSerializer,
    FlashSaleEditInputSerializer,
    FlashSaleOutputSerializer,
    FlashSaleStatsSerializer,
    PreheatOutputSerializer,
    ProductOutputSerializer,
)
from shop.exceptions import SaleBusy
from shop.models import FlashSale
from shop.selectors import flash_sale_list, flash_sale_stats, product_list_active
from shop.services import flash_sale_create, flash_sale_edit, flash_sale_preheat


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
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, anyone_reads_staff_with("shop.add_flashsale")]
    serializer_class = FlashSaleOutputSerializer
    filterset_class = FlashSaleFilter

    def get_queryset(self):
        return flash_sale_list()

    @extend_schema(
        request=FlashSaleCreateInputSerializer,
        parameters=[IDEMPOTENCY_KEY_HEADER],
        responses={201: FlashSaleOutputSerializer},
    )
    @idempotent
    def post(self, request):
        serializer = FlashSaleCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sale = flash_sale_create(actor=request.user, **serializer.validated_data)
        return Response(FlashSaleOutputSerializer(flash_sale_list().get(pk=sale.pk)).data, status=201)


class FlashSaleDetailApi(generics.RetrieveAPIView):
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, anyone_reads_staff_with("shop.change_flashsale")]
    serializer_class = FlashSaleOutputSerializer

    def get_queryset(self):
        return flash_sale_list()

    @extend_schema(request=FlashSaleEditInputSerializer, responses={200: FlashSaleOutputSerializer})
    def patch(self, request, pk: int):
        """Change the end, quantity or per-user limit of an open sale, naming the version read."""
        sale = self.get_object()
        serializer = FlashSaleEditInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flash_sale_edit(sale=sale, actor=request.user, **serializer.validated_data)
        return Response(FlashSaleOutputSerializer(flash_sale_list().get(pk=sale.pk)).data)


class FlashSalePreheatApi(APIView):
    permission_classes = [staff_with("shop.change_flashsale")]

    @extend_schema(request=None, responses={200: PreheatOutputSerializer})
    def post(self, request, pk: int):
        sale = get_object_or_404(FlashSale, pk=pk)
        remaining = flash_sale_preheat(sale=sale)
        if remaining is None:
            raise SaleBusy()
        return Response({"remaining": remaining})


class FlashSaleStatsApi(APIView):
    permission_classes = [staff_with("shop.view_flashsale")]

    @extend_schema(responses={200: FlashSaleStatsSerializer})
    def get(self, request, pk: int):
        sale = get_object_or_404(FlashSale, pk=pk)
        return Response(FlashSaleStatsSerializer(flash_sale_stats(sale=sale)).data)
