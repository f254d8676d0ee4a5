from django.contrib import admin

from inventory.models import Stock, StockAlert, StockMovement


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ["sku", "on_hand", "allocated", "available", "low_stock_threshold", "version"]
    list_select_related = ["sku"]
    readonly_fields = ["on_hand", "allocated", "version"]


@admin.register(StockMovement)
class StockMovementAdmin(admin.ModelAdmin):
    list_display = ["created_at", "stock", "kind", "quantity", "on_hand_after", "allocated_after", "actor", "reason"]
    list_select_related = ["stock__sku", "actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StockAlert)
class StockAlertAdmin(admin.ModelAdmin):
    list_display = ["stock", "available_at_open", "opened_at", "acknowledged_at", "closed_at"]
    list_select_related = ["stock__sku"]
