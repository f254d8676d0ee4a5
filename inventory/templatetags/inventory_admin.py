from django import template

from inventory.models import StockAlert

register = template.Library()


@register.simple_tag
def open_stock_alert_count() -> int:
    return StockAlert.objects.open().count()
