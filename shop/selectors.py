from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from shop.models import SKU, FlashSale, Product


def product_list_active() -> QuerySet[Product]:
    """Active products with their SKUs and each SKU's stock, in three queries at most."""
    skus = SKU.objects.select_related("stock").order_by("price", "code")
    return Product.objects.active().prefetch_related(Prefetch("skus", queryset=skus))


def flash_sale_list_on_offer() -> QuerySet[FlashSale]:
    """Sales a shopper can see: live now or starting later, soonest first."""
    return (
        FlashSale.objects.on_offer()
        .filter(ends_at__gt=timezone.now())
        .select_related("sku__product")
        .order_by("starts_at")
    )


def flash_sale_list() -> QuerySet[FlashSale]:
    return FlashSale.objects.select_related("sku__product").order_by("-starts_at", "-id")
