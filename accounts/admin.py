from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User
from accounts.services import user_set_active
from config.admin import confirm_then_apply
from orders.services import purchase_block_create


@admin.register(User)
class ShopUserAdmin(UserAdmin):
    actions = ["deactivate_accounts", "reactivate_accounts", "block_from_every_sale"]

    def save_model(self, request, obj, form, change):
        # A change of "active" goes through the service, so that the sale layer hears of it.
        wanted = obj.is_active
        if change and "is_active" in form.changed_data:
            obj.is_active = form.initial["is_active"]
        super().save_model(request, obj, form, change)
        if obj.is_active != wanted:
            user_set_active(user=obj, active=wanted)

    @admin.action(description="Deactivate the selected accounts", permissions=["change"])
    def deactivate_accounts(self, request, queryset):
        return self._set_active(request, queryset, active=False)

    @admin.action(description="Reactivate the selected accounts", permissions=["change"])
    def reactivate_accounts(self, request, queryset):
        return self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, *, active: bool):
        verb = "Reactivate" if active else "Deactivate"
        return confirm_then_apply(
            self,
            request,
            queryset,
            list(queryset.order_by("pk")),
            action="reactivate_accounts" if active else "deactivate_accounts",
            title=f"{verb} accounts",
            question=f"{verb} these accounts?"
            + ("" if active else " They can no longer sign in, and their purchases are refused at once."),
            describe=lambda user: f"{user.username} ({user.email or 'no e-mail'})",
            service=lambda user: user_set_active(user=user, active=active),
            done=f"{verb}d",
        )

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
