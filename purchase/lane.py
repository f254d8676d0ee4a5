"""The purchase lane: `POST /api/v1/flash-sales/{id}/purchase/` with a bearer token, served by
a view stack of its own.

The purchase is the one request that arrives ten thousand times a second, and most of what the
shop's full stack does (sessions, CSRF, messages, static files, DRF's negotiation) it does not
need. Here it keeps what it does need, the same code as everywhere else: request id, the rate
limiter (whose shared buckets the admission script takes), the token verified once, the
contract's answers, and the request metrics dashboards read (without the rest of what
django_prometheus records for every request, body-size histograms and by-transport counters,
which cost a quarter of a purchase here). Anything off the usual path (a bad token, body or
key) is handed to the full API view, so every error answer is the one the rest of the API
gives. A session-authenticated purchase (the storefront, with CSRF) never comes here.
PURCHASE_LANE=0 turns it off.
"""

import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from django_prometheus.middleware import Metrics
from rest_framework.exceptions import APIException

from core.addresses import client_ip
from core.api.authentication import bearer_token
from core.api.errors import DEPENDENCY_ERRORS, dependency_unavailable_response, domain_error_response
from core.api.idempotency import idempotency_key
from core.api.parsers import json_parse
from core.exceptions import DomainError
from core.paths import PURCHASE_API_PATH, PURCHASE_API_ROUTE
from purchase.admission import purchase_admit, purchase_screen
from purchase.api.serializers import PurchaseInputSerializer
from purchase.api.views import FlashSalePurchaseApi
from purchase.exceptions import PurchasePassInvalid

MIDDLEWARE = [
    "purchase.lane.LaneMetricsMiddleware",
    "core.middleware.RequestIdMiddleware",
    "limits.middleware.RateLimitMiddleware",
    "purchase.lane.PurchaseScreenMiddleware",
]
VIEW_NAME = "flash-sale-purchase"  # The full stack's name for the same endpoint.
full_view = FlashSalePurchaseApi.as_view()


class LaneMetricsMiddleware:
    """django_prometheus's request, response-by-status and latency metrics for the lane's
    purchases, under the endpoint's own view name, so that they add up with the full stack's."""

    def __init__(self, get_response):
        self.get_response = get_response
        metrics = Metrics.get_instance()
        self.requests = metrics.requests_total
        self.requests_by_view = metrics.requests_by_view_transport_method.labels(VIEW_NAME, "http", "POST")
        self.responses = metrics.responses_total
        self.responses_by_status = metrics.responses_by_status_view_method
        self.latency = metrics.requests_latency_by_view_method.labels(VIEW_NAME, "POST")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        self.requests.inc()
        self.requests_by_view.inc()
        response = self.get_response(request)
        self.responses.inc()
        self.responses_by_status.labels(str(response.status_code), VIEW_NAME, "POST").inc()
        self.latency.observe(time.perf_counter() - started)
        return response


# The refusal's body, the API's own, encoded once: a bot may send thousands a second.
PASS_INVALID_BODY = domain_error_response(PurchasePassInvalid()).content


class PurchaseScreenMiddleware:
    """A purchase for a host the shop does not serve (400), from a blocked shopper or network,
    without a valid pass for a sale that requires one, or before its turn in the sale's waiting
    room, is refused here, as the rate limiter refuses: before the body is read or the URL
    resolved, so that a bot's thousandth try costs what a rate-limited one does (`make bench`,
    phase p against e). The screening is the full view's own (`purchase_screen`), in the same
    order, so both doors give the same answer. What passed is handed to `purchase_admit` on the
    request (as the rate limiter hands over its limits), which screens only what no door
    screened."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.get_host()  # DisallowedHost: the lane's 400 page, as the full stack's.
        token = bearer_token(request)
        if token is not None and "user_id" in token:
            try:
                request.purchase_screened = purchase_screen(
                    sale_id=int(PURCHASE_API_PATH.match(request.path_info)["pk"]),
                    user_id=int(token["user_id"]),
                    purchase_pass=request.META.get("HTTP_PURCHASE_PASS"),
                    queue_ticket=request.META.get("HTTP_QUEUE_TICKET"),
                    address=client_ip(request),
                )
            except PurchasePassInvalid:
                return HttpResponse(PASS_INVALID_BODY, content_type="application/json", status=403)
            except DomainError as error:
                return domain_error_response(error)
            except DEPENDENCY_ERRORS:
                return dependency_unavailable_response()
        return self.get_response(request)


def takes(environ: dict) -> bool:
    """Whether the lane serves this request: a bearer-token purchase."""
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")
        and PURCHASE_API_PATH.match(environ.get("PATH_INFO", "")) is not None
    )


# The serializer's own field, read once: its bounds are the API's.
QUANTITY = PurchaseInputSerializer().fields["quantity"]


def _quantity(request: HttpRequest) -> int | None:
    """The body's quantity when it is plainly what the API expects (a JSON object whose
    quantity is an integer within the serializer's bounds), else None: the full view then
    judges it with the serializer itself."""
    if request.content_type != "application/json":
        return None
    try:
        body = json_parse(request.body)
    except (ValueError, UnicodeDecodeError, RequestDataTooBig):
        return None
    quantity = body.get("quantity") if isinstance(body, dict) else None
    if type(quantity) is int and QUANTITY.min_value <= quantity <= QUANTITY.max_value:
        return quantity
    return None


@csrf_exempt  # A bearer token, never a cookie, authenticates here.
def purchase(request: HttpRequest, pk: str) -> HttpResponse:
    sale_id = int(pk)  # The route's digits (core.paths).
    token = bearer_token(request)
    quantity = _quantity(request)
    try:
        key = idempotency_key(request, required=True)
    except APIException:
        key = None
    if token is None or "user_id" not in token or key is None or quantity is None:
        return full_view(request, pk=sale_id)
    try:
        reservation_id = purchase_admit(
            sale_id=sale_id,
            user_id=int(token["user_id"]),
            quantity=quantity,
            idempotency_key=key,
            limits=getattr(request, "purchase_limits", ()),
            screened=request.purchase_screened,
        )
    except DomainError as error:
        return domain_error_response(error)
    except DEPENDENCY_ERRORS:
        return dependency_unavailable_response()
    return JsonResponse({"reservation_id": reservation_id, "status": "pending"}, status=202)


urlpatterns = [re_path(rf"^{PURCHASE_API_ROUTE}$", purchase)]
# The lane's error pages are the full stack's (config/urls.py): they answer JSON under /api/.
handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
