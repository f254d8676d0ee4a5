import csv
from collections.abc import Callable
from typing import Any

import redis
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from core.exceptions import DomainError


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


# What an action can meet besides a service's refusal: a dependency that is away for a moment.
UNAVAILABLE = (redis.RedisError, OperationalError)


def apply_to_each(modeladmin, request, objects, service: Callable, *, done: str) -> int:
    """Call `service(obj)` for each object of an admin action and say, per object, what failed
    and why; then how many succeeded. A refusal or an outage is a message, never a server error.
    Each success is logged in the object's history. Returns how many succeeded."""
    succeeded = 0
    for obj in objects:
        try:
            service(obj)
        except DomainError as error:
            modeladmin.message_user(request, f"{obj}: not done: {error}", messages.WARNING)
        except UNAVAILABLE:
            modeladmin.message_user(request, f"{obj}: not done: a service is unavailable, try again", messages.ERROR)
        else:
            succeeded += 1
            modeladmin.log_change(request, obj, done)
    level = messages.SUCCESS if succeeded else messages.WARNING
    modeladmin.message_user(request, f"{done}: {succeeded} of {len(objects)}.", level)
    return succeeded


def confirm_then_apply(
    modeladmin,
    request,
    queryset,
    objects: list,
    *,
    action: str,
    title: str,
    question: str,
    describe: Callable[[Any], str],
    service: Callable,
    done: str,
    ask_reason: bool = False,
):
    """An admin action that changes records: first an intermediate page listing `objects` (each
    as `describe(obj)`) that asks `question` (and, with `ask_reason`, a reason), then, once
    confirmed, `service(obj)` (or `service(obj, reason)`) for each through `apply_to_each`.

    Returns the page to show, or None once applied; the action returns what this returns.
    """
    confirmed = request.POST.get("confirmed") == "yes"
    reason = request.POST.get("reason", "").strip()
    if confirmed and (reason or not ask_reason):
        apply = (lambda obj: service(obj, reason)) if ask_reason else service
        apply_to_each(modeladmin, request, objects, apply, done=done)
        return None
    context = {
        "ask_reason": ask_reason,
        "reason_missing": confirmed,
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "question": question,
        "items": [describe(obj) for obj in objects],
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


class BelongsToPageInline(ReadOnlyAdminMixin):
    """An inline of records that belong to the page's object (its history, its payments, its
    edits): read-only, and seen by whoever may see that object, without a permission of its own."""

    def has_view_permission(self, request, obj=None):
        opts = self.parent_model._meta
        return any(
            request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
            for action in ("view", "change")
        )


class _Echo:
    """A write-only file for csv.writer that hands each line back."""

    def write(self, value: str) -> str:
        return value


class CsvExportMixin:
    """An "Export CSV" button on the change list: the rows it shows with its current filters and
    search, streamed. Set `csv_columns` (header -> value of a row) and `csv_name`."""

    change_list_template = "admin/change_list_with_csv.html"
    csv_columns: dict[str, Callable] = {}
    csv_name = "export"

    def get_urls(self):
        opts = self.model._meta
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name=f"{opts.app_label}_{opts.model_name}_csv",
        )
        return [export, *super().get_urls()]

    def export_csv_view(self, request: HttpRequest):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = self.get_changelist_instance(request).get_queryset(request).order_by("pk")
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(self.csv_columns)
            for row in rows.iterator(chunk_size=2000):
                yield writer.writerow([value(row) for value in self.csv_columns.values()])

        filename = f"{self.csv_name}-{timezone.now():%Y%m%d-%H%M%S}.csv"
        return StreamingHttpResponse(
            lines(), content_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )
