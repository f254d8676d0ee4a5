"""The sales' gauges, read at scrape time (registered in ShopConfig.ready())."""

from prometheus_client.core import GaugeMetricFamily

from shop.models import FlashSale


class LiveSalesRemaining:
    def collect(self):
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
