from django.conf import settings
from django.db.models import QuerySet

from accounts.selectors import staff_emails_with
from inventory.models import Stock, StockAlert, StockMovement


def stock_list() -> QuerySet[Stock]:
    return Stock.objects.with_available().select_related("sku__product").order_by("sku__code")


def stock_get_by_sku_code(*, code: str) -> Stock:
    """Raises Stock.DoesNotExist for an unknown code."""
    return Stock.objects.select_related("sku").get(sku__code=code)


def stock_movement_list() -> QuerySet[StockMovement]:
    return StockMovement.objects.select_related("stock__sku", "actor")


def stock_alert_list() -> QuerySet[StockAlert]:
    return StockAlert.objects.select_related("stock__sku", "acknowledged_by")


def stock_alert_recipients() -> list[str]:
    """STOCK_ALERT_RECIPIENTS when set, else the staff who may see stock alerts (the stock clerks)."""
    if settings.STOCK_ALERT_RECIPIENTS:
        return list(settings.STOCK_ALERT_RECIPIENTS)
    return staff_emails_with("inventory.view_stockalert")
