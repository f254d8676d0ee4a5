import redis
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from inventory import redis_sales
from limits.breaker import redis_breaker
from orders.models import Order
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


def flash_sale_stats(*, sale: FlashSale) -> dict:
    """The staff view of a sale: the database's counts beside Redis's, and whether they agree."""
    counts = sale.orders.aggregate(
        confirmed=Count("pk", filter=~Q(status=Order.Status.CANCELLED)),
        paid=Count("pk", filter=Q(status__in=[Order.Status.PAID, Order.Status.FULFILLED])),
        cancelled=Count("pk", filter=Q(status=Order.Status.CANCELLED)),
    )
    in_stream = redis_sales.reservations_in_stream(sale.pk)
    remaining_cache = redis_sales.sale_remaining(sale.pk)
    pending_units = sum(entry.quantity for entry in in_stream)
    open_sale = sale.status in {FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE}
    expected_cache = sale.remaining - pending_units if open_sale else None
    return {
        "quantity": sale.quantity,
        "remaining_cache": remaining_cache,
        "pending": len(in_stream),
        "orders_confirmed": counts["confirmed"],
        "orders_paid": counts["paid"],
        "orders_cancelled": counts["cancelled"],
        "units_sold": sale.units_sold,
        "consistent": remaining_cache == expected_cache if open_sale else not in_stream,
    }


def flash_sale_remaining_now(*, sale: FlashSale) -> int:
    """Units still on offer: Redis's live count, or the database's when Redis cannot say."""
    if sale.status in {FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE}:
        try:
            live = redis_breaker.call(lambda: redis_sales.sale_remaining(sale.pk))
        except redis.RedisError:
            live = None
        if live is not None:
            return live
    return sale.remaining
