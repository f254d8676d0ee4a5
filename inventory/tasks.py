from celery import shared_task
from django.core.mail import send_mail

from inventory.models import StockAlert
from inventory.selectors import stock_alert_recipients
from inventory.services import stock_alert_claim_notification, stock_alert_unclaim_notification


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, retry_jitter=True, max_retries=5)
def stock_alert_notify(alert_id: int) -> bool:
    """E-mail staff about a newly opened low-stock alert, once, however often this runs.

    Returns whether this run sent the e-mail.
    """
    if not stock_alert_claim_notification(alert_id=alert_id):
        return False
    alert = StockAlert.objects.select_related("stock__sku__product").get(pk=alert_id)
    stock = alert.stock
    recipients = stock_alert_recipients()
    if not recipients:
        return False
    try:
        send_mail(
            subject=f"Low stock: {stock.sku.code} ({stock.sku.product.name})",
            message=(
                f"{stock.sku.code} has {alert.available_at_open} units available, at or below its threshold "
                f"of {alert.threshold_at_open}.\n\nOn hand: {stock.on_hand}, allocated: {stock.allocated}.\n"
            ),
            from_email=None,
            recipient_list=recipients,
        )
    except OSError:
        stock_alert_unclaim_notification(alert_id=alert_id)
        raise
    return True
