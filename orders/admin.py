from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.admin import ShopUserAdmin
from core.admin import BelongsToPageInline, CsvExportMixin, ReadOnlyAdminMixin, apply_to_each, confirm_then_apply
from orders.exceptions import InvalidBlock
from orders.models import (
    FailedReservation,
    Order,
    OrderEmail,
    OrderTransition,
    PaymentAttempt,
    PurchaseBlock,
    Refund,
    WaitingRoomDraw,
)
from orders.services import (
    order_cancel,
    order_fulfil,
    order_refund,
    purchase_block_create,
    purchase_block_lift,
    purchase_block_terms_check,
)
from orders.waiting_room import waiting_room_draw_holds


class OrderTransitionInline(BelongsToPageInline, admin.TabularInline):
    model = OrderTransition
    extra = 0
    readonly_fields = ["from_status", "to_status", "actor", "reason", "created_at"]


class PaymentAttemptInline(BelongsToPageInline, admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    readonly_fields = ["idempotency_key", "amount", "status", "reference", "created_at", "updated_at"]


class RefundInline(BelongsToPageInline, admin.StackedInline):
    model = Refund
    extra = 0
    readonly_fields = ["amount", "reason", "actor", "reference", "idempotency_key", "created_at"]


class OrderEmailInline(BelongsToPageInline, admin.TabularInline):
    model = OrderEmail
    extra = 0
    readonly_fields = ["kind", "claimed_at", "sent_at"]
    verbose_name_plural = "E-mails to the shopper"


@admin.register(Order)
class OrderAdmin(CsvExportMixin, admin.ModelAdmin):
    """Orders change only through their state machine: the actions below, never the form."""

    csv_name = "orders"
    csv_columns = {
        "id": lambda o: o.pk,
        "created_at": lambda o: o.created_at.isoformat(),
        "user": lambda o: o.user.username,
        "sku": lambda o: o.sku.code,
        "flash_sale": lambda o: o.flash_sale_id or "",
        "quantity": lambda o: o.quantity,
        "unit_price": lambda o: o.unit_price,
        "total": lambda o: o.total,
        "status": lambda o: o.status,
        "admission": lambda o: o.admission,
        "pay_by": lambda o: o.pay_by.isoformat() if o.pay_by else "",
        "reservation_id": lambda o: o.reservation_id,
    }

    list_display = ["id", "user", "sku", "flash_sale", "quantity", "total", "status", "created_at", "pay_by"]
    list_filter = ["status", "admission", "flash_sale", "created_at"]
    list_select_related = ["user", "sku", "flash_sale"]
    search_fields = ["=id", "reservation_id", "user__username", "user__email", "sku__code"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [OrderTransitionInline, PaymentAttemptInline, RefundInline, OrderEmailInline]
    actions = ["cancel", "fulfil", "refund"]

    def has_add_permission(self, request):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: nothing to save, the actions do the changing.
        no_saving = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **no_saving})

    def has_delete_permission(self, request, obj=None):
        return False

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("orders.refund_order")

    @admin.action(description="Cancel selected unpaid orders (units go back)", permissions=["change"])
    def cancel(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.filter(status=Order.Status.PENDING_PAYMENT).select_related("sku", "user")),
            action="cancel",
            title="Cancel orders",
            question="Cancel these unpaid orders? Their units go back on sale or to stock.",
            describe=lambda o: f"Order #{o.pk}: {o.quantity} x {o.sku.code} for {o.user}",
            service=lambda o: order_cancel(order=o, actor=request.user, reason="cancelled by staff"),
            done="Cancelled",
        )

    @admin.action(description="Mark selected paid orders as fulfilled", permissions=["change"])
    def fulfil(self, request, queryset):
        orders = list(queryset.filter(status=Order.Status.PAID))
        apply_to_each(self, request, orders, lambda o: order_fulfil(order=o, actor=request.user), done="Fulfilled")

    @admin.action(description="Refund selected paid orders (money back, units back to stock)", permissions=["refund"])
    def refund(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.filter(status=Order.Status.PAID).select_related("sku", "user")),
            action="refund",
            title="Refund orders",
            question="Refund these paid orders? The money goes back to each shopper and the units back to stock.",
            describe=lambda o: f"Order #{o.pk}: {o.quantity} x {o.sku.code} for {o.user}, {o.total}",
            service=lambda o, reason: order_refund(order=o, actor=request.user, reason=reason),
            done="Refunded",
            ask_reason=True,
        )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["order", "amount", "reason", "actor", "reference", "created_at"]
    list_filter = ["created_at"]
    list_select_related = ["order", "actor"]
    search_fields = ["=order__id", "reference", "reason"]


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


class PurchaseBlockForm(forms.ModelForm):
    class Meta:
        model = PurchaseBlock
        fields = ["account", "network", "flash_sale", "reason", "expires_at"]

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["network"] = purchase_block_terms_check(
                    **{term: data.get(term) or "" for term in ("network", "reason")},
                    account=data.get("account"),
                    expires_at=data.get("expires_at"),
                )
            except InvalidBlock as error:
                self.add_error(None, str(error))
        return data


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "In force"), ("no", "Expired or lifted")]

    def queryset(self, request, queryset):
        in_force = PurchaseBlock.objects.in_force(timezone.now()).values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=in_force)
        if self.value() == "no":
            return queryset.exclude(pk__in=in_force)
        return queryset


@admin.register(PurchaseBlock)
class PurchaseBlockAdmin(admin.ModelAdmin):
    """Blocks are added and lifted, never edited or deleted: the list is the record of who was
    kept from buying, where, why and by whom."""

    form = PurchaseBlockForm
    list_display = [
        "__str__", "account", "network", "flash_sale", "reason", "expires_at", "in_force", "created_by", "created_at",
        "lifted_at",
    ]  # fmt: skip
    list_filter = [InForceFilter, "flash_sale", "created_at"]
    list_select_related = ["account", "flash_sale", "created_by"]
    search_fields = ["account__username", "account__email", "network", "reason"]
    autocomplete_fields = ["account", "flash_sale"]
    date_hierarchy = "created_at"
    actions = ["lift"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*self.form.Meta.fields, "created_by", "created_at", "lifted_at", "lifted_by"]

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        no_saving = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **no_saving})

    @admin.display(boolean=True, description="in force")
    def in_force(self, block: PurchaseBlock) -> bool:
        return block.lifted_at is None and (block.expires_at is None or block.expires_at > timezone.now())

    def save_model(self, request, obj, form, change):
        created = purchase_block_create(actor=request.user, **{f: form.cleaned_data[f] for f in form.Meta.fields})
        obj.pk = created.pk

    @admin.action(description="Lift selected blocks", permissions=["change"])
    def lift(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.in_force(timezone.now()).select_related("account", "flash_sale")),
            action="lift",
            title="Lift purchase blocks",
            question="Lift these blocks? Their shoppers and addresses may buy again within seconds.",
            describe=str,
            service=lambda block: purchase_block_lift(block=block, actor=request.user),
            done="Lifted",
        )


@admin.register(WaitingRoomDraw)
class WaitingRoomDrawAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The draws of waiting rooms, as recorded at each sale's start, and whether each holds: the
    order recomputed from the seed and the early arrivals is the order recorded."""

    list_display = ["flash_sale", "entrant_count", "holds", "recorded_at"]
    list_filter = ["recorded_at", "flash_sale"]
    list_select_related = ["flash_sale"]
    search_fields = ["flash_sale__title", "=flash_sale__id"]

    @admin.display(description="early arrivals")
    def entrant_count(self, draw: WaitingRoomDraw) -> int:
        return len(draw.entrants)

    @admin.display(boolean=True, description="order recomputes from the seed")
    def holds(self, draw: WaitingRoomDraw) -> bool:
        return waiting_room_draw_holds(draw)


# The account admin gains the orders app's action: accounts, below orders, knows no purchase block.
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class AccountAdmin(ShopUserAdmin):
    actions = [*ShopUserAdmin.actions, "block_from_every_sale"]

    @admin.action(
        description="Block the selected accounts from buying in every sale", permissions=["block_from_every_sale"]
    )
    def block_from_every_sale(self, request, queryset):
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.order_by("pk")),
            action="block_from_every_sale",
            title="Block from every sale",
            question="Keep these accounts from buying in every sale until the block is lifted? "
            "They may still sign in and see their orders.",
            describe=lambda user: f"{user.username} ({user.email or 'no e-mail'})",
            service=lambda user, reason: purchase_block_create(actor=request.user, account=user, reason=reason),
            done="Blocked",
            ask_reason=True,
        )

    def has_block_from_every_sale_permission(self, request) -> bool:
        return request.user.has_perm("orders.add_purchaseblock")
