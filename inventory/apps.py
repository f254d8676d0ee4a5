from django.apps import AppConfig


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"

    def ready(self):
        from core.metrics import SCRAPE_TIME
        from inventory.metrics import OpenStockAlerts

        SCRAPE_TIME.register(OpenStockAlerts())
