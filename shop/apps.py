from django.apps import AppConfig


class ShopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "shop"

    def ready(self):
        from accounts.signals import account_activity_changed
        from core.metrics import SCRAPE_TIME
        from shop.metrics import LiveSalesRemaining
        from shop.services import flash_sales_block_account

        SCRAPE_TIME.register(LiveSalesRemaining())
        account_activity_changed.connect(flash_sales_block_account, dispatch_uid="shop.flash_sales_block_account")
