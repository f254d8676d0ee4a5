from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User
from accounts.services import user_set_active
from core.admin import confirm_then_apply


@admin.register(User)
class ShopUserAdmin(UserAdmin):
    actions = ["deactivate_accounts", "reactivate_accounts"]

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
