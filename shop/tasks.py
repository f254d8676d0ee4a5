import logging

from celery import shared_task
from django.utils import timezone

from shop.models import FlashSale
from shop.services import (
    flash_sale_drifts_notify,
    flash_sale_reconcile,
)

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=5, retry_jitter=True, max_retries=5)
def flash_sales_reconcile() -> int:
    """Compare every open sale's Redis counters with the database, then e-mail the sales staff
    about each drift found (here or by a staff's reconcile), once. Returns how many drifted."""
    drifted = 0
    for sale in FlashSale.objects.on_offer().filter(starts_at__lte=timezone.now()):
        result = flash_sale_reconcile(sale=sale)
        drifted += bool(result and result.drifted)
    flash_sale_drifts_notify()
    return drifted
