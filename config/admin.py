from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from config.exceptions import DomainError


class DomainErrorsAsMessagesMixin:
    """Show a service's refusal (stale version, too little stock ...) as an admin error message.

    The admin's change form calls services from `save_model`, after form validation; what they
    refuse there comes back to the same page with the reason instead of a server error.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
            return HttpResponseRedirect(request.path)


def confirmation_page(
    modeladmin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    question: str,
    items: list[str],
    ask_reason: bool = False,
):
    """The intermediate page of an admin action, or None once the user has confirmed (and, with
    `ask_reason`, given a reason: the action reads it from `request.POST["reason"]`).

    The action calls this first and carries on only when it returns None.
    """
    confirmed = request.POST.get("confirmed") == "yes"
    if confirmed and (not ask_reason or request.POST.get("reason", "").strip()):
        return None
    context = {
        "ask_reason": ask_reason,
        "reason_missing": confirmed,
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "question": question,
        "items": items,
        "queryset": queryset,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)


class ReadOnlyAdminMixin:
    """For records that history must not change: no add, change or delete for anyone."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
