"""Project-level views: health, and error pages that speak JSON to API clients."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.api.errors import json_error
from config.health import health_report


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


def wants_json(request: HttpRequest) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_view(status: int, code: str, detail: str, template: str):
    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if wants_json(request):
            return json_error(code, detail, status)
        return render(request, template, {"detail": detail}, status=status)

    return view


bad_request = error_view(400, "bad_request", "The request is malformed.", "400.html")
permission_denied = error_view(403, "permission_denied", "You do not have permission to do this.", "403.html")
page_not_found = error_view(404, "not_found", "Not found.", "404.html")


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return json_error("server_error", "Something went wrong on our side.", 500)
    return render(request, "500.html", status=500)
