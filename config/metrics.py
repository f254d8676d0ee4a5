"""The shop's own Prometheus metrics, and what the /metrics view exports.

Under gunicorn and Celery, PROMETHEUS_MULTIPROC_DIR (set by `make run`) lets every process
write its samples to files that the view adds up, so any web process answers for them all.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

PURCHASE_OUTCOMES = Counter("shop_purchase_outcomes_total", "Purchase attempts by how they were answered.", ["outcome"])
REDIS_SCRIPT_SECONDS = Histogram(
    "shop_redis_script_seconds",
    "Time of one Lua script call.",
    ["script"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
WRITER_BATCH_SIZE = Histogram(
    "shop_order_writer_batch_size", "Reservations per order-writer batch.", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
WRITER_LAG_SECONDS = Histogram(
    "shop_order_writer_lag_seconds",
    "From a reservation's admission to its order's commit.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class ShopStateCollector:
    """Read at scrape time from the database: what is open right now."""

    def collect(self):
        # Imported here: this module loads before the apps do.
        from inventory.models import StockAlert
        from shop.models import FlashSale

        alerts = GaugeMetricFamily("shop_open_stock_alerts", "Low-stock alerts not yet closed.")
        alerts.add_metric([], StockAlert.objects.open().count())
        yield alerts
        remaining = GaugeMetricFamily(
            "shop_flash_sale_remaining_units", "Units of a live sale not yet in orders.", labels=["sale"]
        )
        for sale_id, quantity, sold in (
            FlashSale.objects.filter(status=FlashSale.Status.LIVE)
            .with_units_sold()
            .values_list("pk", "quantity", "units_sold_annotated")
        ):
            remaining.add_metric([str(sale_id)], quantity - sold)
        yield remaining


def metrics_exposition() -> bytes:
    """Every metric in Prometheus text format: all processes' samples, then the shop's state."""
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    state = CollectorRegistry()
    state.register(ShopStateCollector())
    return generate_latest(registry) + generate_latest(state)
