from operator import attrgetter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import (
    CsvExportMixin,
    DomainErrorsAsMessagesMixin,
    ReadOnlyAdminMixin,
    confirm_then_apply,
)
from core.exceptions import DomainError
from inventory.forms import StockAdjustForm, StockMoveForm, StockThresholdForm
from inventory.models import Stock, StockAlert, StockMovement
from inventory.services import (
    stock_adjust,
    stock_alert_acknowledge,
    stock_issue,
    stock_receive,
    stock_update_threshold,
)


class LowStockFilter(admin.SimpleListFilter):
    title = "stock level"
    parameter_name = "low"

    def lookups(self, request, model_admin):
        return [("yes", "At or below threshold"), ("no", "Above threshold")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(available_units__lte=F("low_stock_threshold"))
        if self.value() == "no":
            return queryset.exclude(available_units__lte=F("low_stock_threshold"))
        return queryset


# Each stock move view: the service it calls, its form, and how it reads in the back office.
STOCK_MOVES = {
    "receive": {"title": "Receive stock", "verb": "Receive", "form": StockMoveForm, "service": stock_receive},
    "issue": {"title": "Issue stock", "verb": "Issue", "form": StockMoveForm, "service": stock_issue},
    "adjust": {"title": "Adjust to a count", "verb": "Count", "form": StockAdjustForm, "service": stock_adjust},
}


@admin.register(Stock)
class StockAdmin(DomainErrorsAsMessagesMixin, admin.ModelAdmin):
    form = StockThresholdForm
    list_display = [
        "sku",
        "product",
        "on_hand",
        "allocated",
        "available_units",
        "low_stock_threshold",
        "low_flag",
        "move_links",
    ]
    list_filter = [LowStockFilter, "sku__product"]
    list_select_related = ["sku__product"]
    search_fields = ["sku__code", "sku__product__name"]
    readonly_fields = ["sku", "on_hand", "allocated", "available", "version", "updated_at", "move_links"]
    fields = [
        "sku",
        "on_hand",
        "allocated",
        "available",
        "low_stock_threshold",
        "expected_version",
        "version",
        "updated_at",
        "move_links",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_available()

    def has_add_permission(self, request):
        return False  # Stock rows come with their SKU; units come in through "Receive".

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="product", ordering="sku__product__name")
    def product(self, stock: Stock):
        return stock.sku.product

    @admin.display(description="available", ordering="available_units")
    def available_units(self, stock: Stock) -> int:
        return stock.available

    @admin.display(description="low stock")
    def low_flag(self, stock: Stock) -> str:
        return "LOW" if stock.is_low else ""

    @admin.display(description="change stock")
    def move_links(self, stock: Stock):
        if not stock.pk:
            return "-"
        links = [
            (reverse(f"admin:inventory_stock_{action}", args=[stock.pk]), move["verb"])
            for action, move in STOCK_MOVES.items()
        ]
        return format_html(" | ".join(['<a href="{}">{}</a>'] * len(links)), *[part for link in links for part in link])

    def save_model(self, request, obj, form, change):
        stock_update_threshold(
            stock=obj,
            low_stock_threshold=form.cleaned_data["low_stock_threshold"],
            expected_version=form.cleaned_data["expected_version"],
        )

    def get_urls(self):
        move_urls = [
            path(
                f"<int:pk>/{action}/",
                self.admin_site.admin_view(self.stock_move_view),
                {"action": action},
                name=f"inventory_stock_{action}",
            )
            for action in STOCK_MOVES
        ]
        return move_urls + super().get_urls()

    def stock_move_view(self, request: HttpRequest, pk: int, action: str):
        """Form, then confirmation, then the service call; errors return to the form."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        stock = get_object_or_404(self.get_queryset(request).select_related("sku__product"), pk=pk)
        move = STOCK_MOVES[action]
        form_class = move["form"]
        form = form_class(request.POST or None, initial={"expected_version": stock.version})
        confirming = False
        if request.method == "POST" and form.is_valid():
            if request.POST.get("confirmed") == "yes":
                try:
                    self.apply_move(request, stock, action, form.cleaned_data)
                except DomainError as error:
                    form.add_error(None, str(error))
                else:
                    return HttpResponseRedirect(reverse("admin:inventory_stock_changelist"))
            else:
                confirming = True
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{move['title']}: {stock.sku.code}",
            "stock": stock,
            "move": move,
            "form": form,
            "confirming": confirming,
        }
        return TemplateResponse(request, "admin/inventory/stock/move.html", context)

    def apply_move(self, request: HttpRequest, stock: Stock, action: str, data: dict) -> None:
        if action == "adjust":
            before = stock.on_hand
            stock = stock_adjust(
                stock=stock,
                on_hand=data["on_hand"],
                expected_version=data["expected_version"],
                actor=request.user,
                reason=data["reason"],
            )
            summary = f"Adjusted on hand from {before} to {stock.on_hand}: {data['reason']}"
        else:
            stock = STOCK_MOVES[action]["service"](
                stock=stock,
                quantity=data["quantity"],
                actor=request.user,
                reason=data["reason"],
                expected_version=data["expected_version"],
            )
            summary = f"{STOCK_MOVES[action]['verb']} {data['quantity']} units: {data['reason']}"
        self.log_change(request, stock, summary)
        self.message_user(request, f"{stock.sku.code}: {summary}. Now {stock.on_hand} on hand, "
                          f"{stock.available} available.", messages.SUCCESS)  # fmt: skip


@admin.register(StockMovement)
class StockMovementAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The ledger: read-only for everyone, superusers included."""

    list_display = [column for column in StockMovement.COLUMNS if column != "id"]
    list_filter = ["kind", "created_at", ("stock__sku", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["stock__sku", "actor"]
    search_fields = ["stock__sku__code", "reason", "reference", "actor__username"]
    date_hierarchy = "created_at"
    csv_name = "stock-movements"
    csv_columns = {column: attrgetter(column) for column in StockMovement.COLUMNS} | {
        "created_at": lambda m: m.created_at.isoformat(),
        "sku": lambda m: m.stock.sku.code,
        "actor": lambda m: m.actor.username if m.actor else "",
    }

    @admin.display(description="SKU", ordering="stock__sku__code")
    def sku(self, movement: StockMovement):
        return movement.stock.sku


class OpenAlertFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("unacknowledged", "Open, not acknowledged"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        match self.value():
            case "open":
                return queryset.open()
            case "unacknowledged":
                return queryset.open().filter(acknowledged_at__isnull=True)
            case "closed":
                return queryset.filter(closed_at__isnull=False)
        return queryset


@admin.register(StockAlert)
class StockAlertAdmin(admin.ModelAdmin):
    list_display = [
        "stock",
        "state",
        "available_at_open",
        "threshold_at_open",
        "opened_at",
        "acknowledged_by",
        "acknowledged_at",
        "closed_at",
    ]
    list_filter = [OpenAlertFilter]
    list_select_related = ["stock__sku", "acknowledged_by"]
    search_fields = ["stock__sku__code", "stock__sku__product__name"]
    readonly_fields = [
        "stock",
        "available_at_open",
        "threshold_at_open",
        "opened_at",
        "acknowledged_at",
        "acknowledged_by",
        "closed_at",
        "notified_at",
    ]
    actions = ["acknowledge"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="state")
    def state(self, alert: StockAlert) -> str:
        if not alert.is_open:
            return "closed"
        return "acknowledged" if alert.acknowledged_at else "open"

    @admin.action(description="Acknowledge selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.open().filter(acknowledged_at__isnull=True).select_related("stock__sku")),
            action="acknowledge",
            title="Acknowledge low-stock alerts",
            question="Acknowledge these open alerts? They stay open until the stock is replenished.",
            describe=lambda a: (
                f"{a.stock.sku.code}: {a.available_at_open} available at opening (threshold {a.threshold_at_open})"
            ),
            service=lambda alert: stock_alert_acknowledge(alert=alert, actor=request.user),
            done="Acknowledged",
        )
