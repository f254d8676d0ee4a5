from django.contrib import admin

from shop.models import SKU, FlashSale, Product


class SKUInline(admin.TabularInline):
    model = SKU
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [SKUInline]


@admin.register(SKU)
class SKUAdmin(admin.ModelAdmin):
    list_display = ["code", "product", "price"]
    list_select_related = ["product"]
    search_fields = ["code", "product__name"]


@admin.register(FlashSale)
class FlashSaleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "sku", "price", "quantity", "units_sold", "starts_at", "ends_at", "status"]
    list_filter = ["status"]
    list_select_related = ["sku"]
    readonly_fields = ["quantity", "units_sold", "status", "created_by"]
