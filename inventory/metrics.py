"""Inventory's gauges, read at scrape time (registered in InventoryConfig.ready())."""

from prometheus_client.core import GaugeMetricFamily

from inventory.models import StockAlert


class OpenStockAlerts:
    def collect(self):
        alerts = GaugeMetricFamily("shop_open_stock_alerts", "Low-stock alerts not yet closed.")
        alerts.add_metric([], StockAlert.objects.open().count())
        yield alerts
