from django import forms
from django.contrib import admin
from django.db import models

from config.admin import DomainErrorsAsMessagesMixin
from inventory.services import stock_get_or_create
from shop.models import SKU, FlashSale, Product
from shop.services import flash_sale_create


class SKUInline(admin.TabularInline):
    model = SKU
    extra = 0
    formfield_overrides = {models.JSONField: {"widget": forms.Textarea(attrs={"rows": 1, "cols": 30})}}
    fields = ["code", "attributes", "price", "on_hand", "allocated", "available"]
    readonly_fields = ["on_hand", "allocated", "available"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("stock")

    def stock_figure(self, sku: SKU, attribute: str):
        stock = getattr(sku, "stock", None) if sku.pk else None
        return getattr(stock, attribute) if stock else "-"

    @admin.display(description="on hand")
    def on_hand(self, sku: SKU):
        return self.stock_figure(sku, "on_hand")

    @admin.display(description="allocated")
    def allocated(self, sku: SKU):
        return self.stock_figure(sku, "allocated")

    @admin.display(description="available")
    def available(self, sku: SKU):
        return self.stock_figure(sku, "available")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "sku_count", "is_active", "updated_at"]
    list_filter = ["is_active"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "skus__code"]
    inlines = [SKUInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(sku_total=models.Count("skus"))

    @admin.display(description="SKUs", ordering="sku_total")
    def sku_count(self, product: Product) -> int:
        return product.sku_total

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for sku in form.instance.skus.all():
            stock_get_or_create(sku=sku)


@admin.register(SKU)
class SKUAdmin(admin.ModelAdmin):
    list_display = ["code", "product", "price"]
    list_select_related = ["product"]
    list_filter = ["product"]
    search_fields = ["code", "product__name"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        stock_get_or_create(sku=obj)


@admin.register(FlashSale)
class FlashSaleAdmin(DomainErrorsAsMessagesMixin, admin.ModelAdmin):
    list_display = ["__str__", "sku", "price", "quantity", "units_sold", "starts_at", "ends_at", "status"]
    list_filter = ["status", "starts_at"]
    list_select_related = ["sku"]
    search_fields = ["title", "sku__code", "sku__product__name"]
    autocomplete_fields = ["sku"]
    date_hierarchy = "starts_at"
    CREATE_FIELDS = ["title", "sku", "price", "quantity", "starts_at", "ends_at", "per_user_limit"]

    def get_fields(self, request, obj=None):
        return self.CREATE_FIELDS if obj is None else [*self.CREATE_FIELDS, "units_sold", "status", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        # A sale's terms are fixed once its units are allocated; only the title may change here.
        return [] if obj is None else [f for f in self.get_fields(request, obj) if f != "title"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["title", "updated_at"])
            return
        data = form.cleaned_data
        created = flash_sale_create(actor=request.user, **{field: data[field] for field in self.CREATE_FIELDS})
        obj.pk = created.pk
