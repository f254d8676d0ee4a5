from django.contrib import admin, messages

from config.admin import ReadOnlyAdminMixin, confirmation_page
from config.exceptions import DomainError
from orders.models import FailedReservation, Order, OrderTransition, PaymentAttempt
from orders.services import order_cancel, order_fulfil


class OrderTransitionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderTransition
    extra = 0
    readonly_fields = ["from_status", "to_status", "actor", "reason", "created_at"]


class PaymentAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    readonly_fields = ["idempotency_key", "amount", "status", "reference", "created_at", "updated_at"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders change only through their state machine: the actions below, never the form."""

    list_display = ["id", "user", "sku", "flash_sale", "quantity", "total", "status", "created_at", "pay_by"]
    list_filter = ["status", "admission", "flash_sale", "created_at"]
    list_select_related = ["user", "sku", "flash_sale"]
    search_fields = ["=id", "reservation_id", "user__username", "user__email", "sku__code"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [OrderTransitionInline, PaymentAttemptInline]
    actions = ["cancel", "fulfil"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _apply(self, request, orders, service, done: str) -> None:
        changed = 0
        for order in orders:
            try:
                service(order)
            except DomainError as error:
                self.message_user(request, f"Order #{order.pk}: {error}", messages.WARNING)
            else:
                changed += 1
                self.log_change(request, order, done)
        self.message_user(request, f"{done}: {changed} order(s).", messages.SUCCESS)

    @admin.action(description="Cancel selected unpaid orders (units go back)", permissions=["change"])
    def cancel(self, request, queryset):
        orders = list(queryset.filter(status=Order.Status.PENDING_PAYMENT).select_related("sku"))
        page = confirmation_page(
            self,
            request,
            queryset,
            action="cancel",
            title="Cancel orders",
            question="Cancel these unpaid orders? Their units go back on sale or to stock.",
            items=[f"Order #{o.pk}: {o.quantity} x {o.sku.code} for {o.user_id}" for o in orders],
        )
        if page:
            return page
        self._apply(
            request,
            orders,
            lambda o: order_cancel(order=o, actor=request.user, reason="cancelled by staff"),
            "Cancelled",
        )
        return None

    @admin.action(description="Mark selected paid orders as fulfilled", permissions=["change"])
    def fulfil(self, request, queryset):
        orders = list(queryset.filter(status=Order.Status.PAID))
        self._apply(request, orders, lambda o: order_fulfil(order=o, actor=request.user), "Fulfilled")


@admin.register(FailedReservation)
class FailedReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["reservation_id", "flash_sale", "user_id", "quantity", "reason", "created_at"]
    list_filter = ["reason", "flash_sale"]
    search_fields = ["reservation_id", "=user_id"]


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["idempotency_key", "order", "amount", "status", "reference", "created_at"]
    list_filter = ["status", "created_at"]
    list_select_related = ["order"]
    search_fields = ["idempotency_key", "reference", "=order__id"]
