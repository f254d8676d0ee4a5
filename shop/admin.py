import hashlib

import redis
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import (
    BelongsToPageInline,
    DomainErrorsAsMessagesMixin,
    ReadOnlyAdminMixin,
    apply_to_each,
    confirm_then_apply,
)
from inventory import redis_sales
from inventory.services import stock_get_or_create
from shop.exceptions import InvalidWaitingRoom, InvalidWaves, SaleBusy
from shop.forms import WavesField
from shop.models import SKU, FlashSale, FlashSaleEdit, Product, SaleDrift
from shop.selectors import flash_sale_activity, flash_sale_report, flash_sale_stats
from shop.services import (
    WAITING_ROOM_TERMS,
    WAVE_TERMS,
    flash_sale_cancel,
    flash_sale_create,
    flash_sale_edit,
    flash_sale_preheat,
    flash_sale_reconcile,
    flash_sale_waiting_room_check,
    flash_sale_waves_check,
)


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


class FlashSaleAddForm(forms.ModelForm):
    waves = WavesField(required=False, help_text=WavesField.__doc__)

    class Meta:
        model = FlashSale
        fields = [
            "title", "sku", "price", "quantity", "starts_at", "ends_at", "per_user_limit", "stock_shards",
            "requires_pass", "pass_challenge", "waiting_room_opens_at", "let_through_per_second",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Asked of a sale with a waiting room only; the model's default otherwise.
        self.fields["let_through_per_second"].required = False

    def clean_let_through_per_second(self) -> int:
        chosen = self.cleaned_data["let_through_per_second"]
        return FlashSale._meta.get_field("let_through_per_second").default if chosen is None else chosen

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                flash_sale_waves_check(**{term: data[term] for term in WAVE_TERMS})
            except InvalidWaves as error:
                self.add_error("waves", str(error))
            try:
                flash_sale_waiting_room_check(**{term: data[term] for term in WAITING_ROOM_TERMS})
            except InvalidWaitingRoom as error:
                self.add_error("waiting_room_opens_at", str(error))
        return data


class FlashSaleChangeForm(forms.ModelForm):
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = FlashSale
        fields = ["title", "ends_at", "quantity", "per_user_limit"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expected_version"].initial = self.instance.version


class FlashSaleEditInline(BelongsToPageInline, admin.TabularInline):
    model = FlashSaleEdit
    extra = 0
    fields = ["created_at", "actor", "what_changed", "version"]
    readonly_fields = fields
    verbose_name_plural = "edits (who, what, when)"

    @admin.display(description="changes")
    def what_changed(self, edit: FlashSaleEdit) -> str:
        return "; ".join(
            f"{field.replace('_', ' ')}: {before} → {after}" for field, (before, after) in edit.changes.items()
        )


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
    list_display = [
        "__str__",
        "sku",
        "price",
        "quantity",
        "units_sold",
        "remaining",
        "remaining_in_redis",
        "per_user_limit",
        "starts_at",
        "ends_at",
        "status",
        "requires_pass",
    ]
    list_filter = ["status", "requires_pass", "starts_at"]
    list_select_related = ["sku"]
    search_fields = ["title", "sku__code", "sku__product__name"]
    autocomplete_fields = ["sku"]
    date_hierarchy = "starts_at"
    actions = ["preheat", "reconcile", "cancel"]
    CREATE_FIELDS = [
        "title", "sku", "price", "quantity", "starts_at", "ends_at", "per_user_limit", "stock_shards", "waves",
        "requires_pass", "pass_challenge", "waiting_room_opens_at", "let_through_per_second",
    ]  # fmt: skip
    # What an edit may change (through flash_sale_edit, with the version the form was drawn at).
    EDITABLE = ["title", "ends_at", "quantity", "per_user_limit", "expected_version"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_units_sold()

    def get_inlines(self, request, obj):
        return [] if obj is None else [FlashSaleEditInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = FlashSaleAddForm if obj is None else FlashSaleChangeForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.CREATE_FIELDS
        return [*self.CREATE_FIELDS, "expected_version", "units_sold", "status", "version", "created_by",
                "draw_audit", "live_numbers", "activity", "report"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        # The price, the SKU and the start are fixed once units are allocated and shoppers saw them.
        return [] if obj is None else [f for f in self.get_fields(request, obj) if f not in self.EDITABLE]

    def has_delete_permission(self, request, obj=None):
        return False

    LIVE_LABELS = {
        "quantity": "units offered",
        "remaining_cache": "left in Redis",
        "pending": "waiting to be written",
        "orders_confirmed": "orders confirmed",
        "orders_paid": "orders paid",
        "orders_cancelled": "orders cancelled",
        "units_sold": "units sold",
        "consistent": "Redis agrees",
    }

    @admin.display(description="left in Redis")
    def remaining_in_redis(self, sale: FlashSale):
        try:
            value = redis_sales.sale_remaining(sale.pk, sale.stock_shards)
        except redis.RedisError:
            return "Redis unreachable"
        return "-" if value is None else value

    @admin.display(description="live numbers")
    def live_numbers(self, sale: FlashSale):
        try:
            stats = flash_sale_stats(sale=sale)
        except redis.RedisError:
            return "Redis unreachable"
        if stats["remaining_cache"] is None:
            lead = settings.FLASH_SALE_PREHEAT_LEAD // 60
            stats["remaining_cache"] = f"not loaded yet (loaded {lead} min before the start, or by the Preheat action)"
            del stats["consistent"]
        if "consistent" in stats:
            stats["consistent"] = "yes" if stats["consistent"] else "no: reconcile repairs it"
        rows = [(self.LIVE_LABELS[name], value) for name, value in stats.items()]
        return format_html_join(
            "", '<div style="display: flex; gap: 1em"><span style="min-width: 12em">{}</span><b>{}</b></div>', rows
        )

    @admin.display(description="report")
    @admin.display(description="waiting room draw")
    def draw_audit(self, sale: FlashSale) -> str:
        """The seed stays secret until the start: before it, only its SHA-256 is shown, so that
        the draw can be checked against what was committed to."""
        if sale.waiting_room_opens_at is None:
            return "No waiting room."
        commitment = hashlib.sha256(sale.waiting_room_seed.encode()).hexdigest()
        if timezone.now() < sale.starts_at:
            return f"Drawn at the start. SHA-256 of the seed: {commitment}"
        return format_html(
            "Seed {} (SHA-256 {}). <a href=\"{}?flash_sale__id__exact={}\">The record of the draw</a>.",
            sale.waiting_room_seed, commitment, reverse("admin:orders_waitingroomdraw_changelist"), sale.pk,
        )  # fmt: skip

    def report(self, sale: FlashSale):
        try:
            report = flash_sale_report(sale=sale)
        except redis.RedisError:
            return "Redis unreachable"
        return render_to_string("admin/shop/flashsale/report.html", {"report": report})

    def get_urls(self):
        live = path("<int:pk>/live/", self.admin_site.admin_view(self.live_view), name="shop_flashsale_live")
        return [live, *super().get_urls()]

    def live_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The page's changing parts, rendered, for its script to swap in every few seconds."""
        sale = get_object_or_404(FlashSale, pk=pk)
        if not self.has_view_permission(request, sale):
            raise PermissionDenied
        return JsonResponse({part: str(getattr(self, part)(sale)) for part in ("live_numbers", "activity", "report")})

    @admin.display(description="activity")
    def activity(self, sale: FlashSale):
        try:
            activity = flash_sale_activity(sale=sale)
        except redis.RedisError:
            return "Redis unreachable"
        return render_to_string("admin/shop/flashsale/activity.html", {"activity": activity})

    def save_model(self, request, obj, form, change):
        if change:
            data = form.cleaned_data
            FlashSale.objects.filter(pk=obj.pk).update(title=data["title"])
            flash_sale_edit(
                sale=obj,
                actor=request.user,
                version=data["expected_version"],
                ends_at=data["ends_at"],
                quantity=data["quantity"],
                per_user_limit=data["per_user_limit"],
            )
            obj.refresh_from_db()
            return
        data = form.cleaned_data
        created = flash_sale_create(actor=request.user, **{field: data[field] for field in self.CREATE_FIELDS})
        obj.pk = created.pk

    @admin.action(description="Preheat selected sales into Redis", permissions=["change"])
    def preheat(self, request, queryset):
        def preheat_one(sale: FlashSale) -> None:
            if flash_sale_preheat(sale=sale) is None:
                raise SaleBusy()

        apply_to_each(self, request, list(queryset.on_offer()), preheat_one, done="Preheated")

    @admin.action(description="Reconcile selected sales with the database", permissions=["change"])
    def reconcile(self, request, queryset):
        for sale in queryset.on_offer():
            result = flash_sale_reconcile(sale=sale)
            if result is None:
                self.message_user(request, f"{sale}: rebuilt in Redis, or another reconcile is running")
            elif result.drifted:
                self.message_user(
                    request,
                    f"{sale}: repaired Redis from {result.remaining_before} to {result.remaining_expected} left",
                    messages.WARNING,
                )
            else:
                self.message_user(request, f"{sale}: Redis agrees with the database")

    @admin.action(description="Cancel selected sales", permissions=["change"])
    def cancel(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.on_offer().select_related("sku")),
            action="cancel",
            title="Cancel flash sales",
            question="Cancel these sales? Shoppers can no longer buy; unsold units return to stock. "
            "Orders already placed stand.",
            describe=lambda sale: f"{sale} ({sale.sku.code}): {sale.remaining} of {sale.quantity} unsold",
            service=lambda sale: flash_sale_cancel(sale=sale, actor=request.user),
            done="Cancelled",
        )


@admin.register(SaleDrift)
class SaleDriftAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "found_at",
        "flash_sale",
        "remaining_before",
        "remaining_expected",
        "in_flight",
        "buyers_repaired",
        "terms_repaired",
    ]
    list_filter = ["found_at"]
    list_select_related = ["flash_sale"]
