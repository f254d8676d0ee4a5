"""The jobs that run a sale's clock: preheat before the start, open at the start, close at the
end once every reservation it accepted is written."""

import logging

from celery import shared_task
from django.utils import timezone

from inventory import redis_sales
from orders.tasks import consumer_name
from orders.writer import order_writer_drain
from shop.models import FlashSale
from shop.services import flash_sale_close, flash_sale_go_live, flash_sale_preheat, flash_sale_should_be_loaded

logger = logging.getLogger(__name__)


@shared_task
def flash_sales_advance() -> None:
    """Move sales along the clock: preheat the upcoming, open the started, close the ended."""
    now = timezone.now()
    for sale in FlashSale.objects.on_offer():
        if sale.ends_at <= now:
            flash_sale_end(sale)
            continue
        if flash_sale_should_be_loaded(sale=sale, now=now):
            flash_sale_preheat(sale=sale)
        if sale.starts_at <= now:
            flash_sale_go_live(sale=sale)


def flash_sale_end(sale: FlashSale) -> bool:
    """Close a sale whose time is up, once every reservation it accepted (in every stock shard)
    is written."""
    shards = sale.stock_shards
    with redis_sales.sale_lock(sale.pk, "end", ttl_ms=120_000) as lock:
        if lock is None:
            return False
        # Admissions close in Redis first. Its clock, not this worker's, decides the window:
        # a purchase admitted after the last look at the stream below would be forgotten.
        redis_sales.sale_set_status(sale.pk, FlashSale.Status.ENDED, shards)
        for shard in range(shards):
            order_writer_drain(sale_id=sale.pk, consumer=consumer_name(), shard=shard, shards=shards)
        if any(redis_sales.reservations_in_stream(sale.pk, shard, shards) for shard in range(shards)):
            logger.info("sale %s: reservations still in flight; closing it on a later run", sale.pk)
            return False
        return flash_sale_close(sale=sale, to=FlashSale.Status.ENDED, if_over_by=timezone.now())
