from django.contrib import admin

from orders.models import Order, OrderTransition


class OrderTransitionInline(admin.TabularInline):
    model = OrderTransition
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "actor", "reason", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "sku", "flash_sale", "quantity", "total", "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["user", "sku", "flash_sale"]
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [OrderTransitionInline]
