"""Project-level views: health, metrics, and error pages that speak JSON to API clients."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from core.addresses import address_in, client_ip
from core.api.errors import json_error
from core.health import health_report
from core.metrics import metrics_exposition


@never_cache
@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    """The process answers: no dependency is asked (load balancers' liveness probe)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    healthy = all(state == "ok" for state in report.values())
    return JsonResponse(report, status=200 if healthy else 503)


def scraper_allowed(request: HttpRequest) -> bool:
    """The metrics token in the Authorization header, or a client from an allowed network."""
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if settings.METRICS_TOKEN and constant_time_compare(sent, settings.METRICS_TOKEN):
        return True
    return address_in(client_ip(request), settings.METRICS_ALLOWED_NETWORKS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; it shows what is on sale and how much is left, so not to everyone."""
    if not scraper_allowed(request):
        return json_error("permission_denied", "Metrics need the metrics token or an allowed network.", 403)
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


def wants_json(request: HttpRequest) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_view(status: int, code: str, detail: str, template: str):
    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if wants_json(request):
            return json_error(code, detail, status)
        user = getattr(request, "user", None)
        if status == 403 and request.path.startswith("/admin/") and getattr(user, "is_staff", False):
            # Staff refused a back-office page stay in the back office, with its header and links.
            context = {**admin.site.each_context(request), "detail": detail, "title": "Not allowed"}
            return render(request, "admin/403.html", context, status=status)
        return render(request, template, {"detail": detail}, status=status)

    return view


bad_request = error_view(400, "bad_request", "The request is malformed.", "400.html")
permission_denied = error_view(403, "permission_denied", "You do not have permission to do this.", "403.html")
page_not_found = error_view(404, "not_found", "Not found.", "404.html")


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return json_error("server_error", "Something went wrong on our side.", 500)
    return render(request, "500.html", status=500)
