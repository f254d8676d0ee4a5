"""The purchase door: `POST /api/v1/flash-sales/{id}/purchase/` with a bearer token, in plain WSGI.

The purchase is the one request that arrives ten thousand times a second, and Django's handler
(its signals, `HttpRequest`, headers, resolver and middleware chain) costs more than the
purchase's own work. This door reads the WSGI environ itself and calls the decisions the API
view calls, in the same order: the rate limiter's per-process bucket, the screen (blocks, the
purchase pass, the waiting room's turn), then `purchase_admit`, whose script takes the shared
buckets, the idempotency key and the unit in one round trip. It answers with the same bodies
and headers (request id, `RateLimit-*`, `Retry-After`) and counts the same metrics series.

Anything off the usual path it leaves to the full stack, before it has done anything: a token
that does not verify, a Host the shop does not serve, a body that is not a JSON object with a
quantity in bounds, a missing or malformed Idempotency-Key, a sale the shop does not know (or a
database it cannot ask), the database-only admission. The full stack's answer is then the one
the rest of the API gives. An unexpected exception is logged and the request handed on too:
its rate limiter counts the attempt a second time, stricter, never looser. A session-
authenticated purchase (the storefront, with CSRF) never comes here. PURCHASE_DOOR=0 sends
every purchase through the full stack.
"""

import functools
import json
import logging
import math
import time
from dataclasses import dataclass
from http import HTTPStatus
from io import BytesIO

from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from django_prometheus.middleware import Metrics
from rest_framework.exceptions import APIException
from rest_framework_simplejwt.exceptions import TokenError

from core.addresses import client_ip_from
from core.api.authentication import token_claims
from core.api.errors import DEPENDENCY_ERRORS, dependency_unavailable, domain_error, retry_headers
from core.api.idempotency import idempotency_key_from
from core.api.parsers import json_parse
from core.exceptions import DomainError
from core.middleware import request_id_for, request_id_var
from core.paths import PURCHASE_API_PATH
from limits.buckets import Decision, local_buckets
from limits.middleware import RATE_LIMITED, limits_for, rate_limit_headers
from purchase.admission import purchase_admit, purchase_screen
from purchase.api.serializers import PurchaseInputSerializer
from purchase.terms import flash_sale_terms
from shop.models import FlashSale

logger = logging.getLogger(__name__)

VIEW_NAME = "flash-sale-purchase"  # The full stack's name for the same endpoint, in its metrics.
# The serializer's own field, read once: its bounds are the API's.
QUANTITY = PurchaseInputSerializer().fields["quantity"]


def takes(environ: dict) -> bool:
    """Whether the door serves this request: a bearer-token purchase."""
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")
        and PURCHASE_API_PATH.match(environ.get("PATH_INFO", "")) is not None
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """A purchase attempt as the door read it, everything in it plainly what the API expects."""

    sale_id: int
    user_id: int
    quantity: int
    key: str
    address: str
    purchase_pass: str | None
    queue_ticket: str | None


def attempt_read(environ: dict) -> Attempt | None:
    """The attempt, or None when the full stack should judge it. Reads the body and puts it back
    for the full stack to read again; does nothing else that anyone could see."""
    if not _host_served(environ) or settings.PURCHASE_ADMISSION == "database":
        return None
    try:
        claims = token_claims(environ["HTTP_AUTHORIZATION"].removeprefix("Bearer ").strip())
        user_id = int(claims["user_id"])
        key = idempotency_key_from(environ.get("HTTP_IDEMPOTENCY_KEY"), required=True)
    except (TokenError, KeyError, ValueError, TypeError, APIException):
        return None
    quantity = _quantity(environ)
    if quantity is None:
        return None
    sale_id = int(PURCHASE_API_PATH.match(environ["PATH_INFO"])["pk"])
    try:
        flash_sale_terms(sale_id)
    except (FlashSale.DoesNotExist, *DEPENDENCY_ERRORS):
        return None
    return Attempt(
        sale_id=sale_id,
        user_id=user_id,
        quantity=quantity,
        key=key,
        address=client_ip_from(environ),
        purchase_pass=environ.get("HTTP_PURCHASE_PASS"),
        queue_ticket=environ.get("HTTP_QUEUE_TICKET"),
    )


def _quantity(environ: dict) -> int | None:
    """The body's quantity when the body is a JSON object whose quantity is an integer within
    the serializer's bounds; the body is put back either way."""
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip() != "application/json":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = BytesIO(body)
    try:
        document = json_parse(body)
    except (ValueError, UnicodeDecodeError):
        return None
    quantity = document.get("quantity") if isinstance(document, dict) else None
    if type(quantity) is int and QUANTITY.min_value <= quantity <= QUANTITY.max_value:
        return quantity
    return None


def _host_served(environ: dict) -> bool:
    """Whether the request's Host is one the shop serves, as `HttpRequest.get_host` judges it;
    False for anything it would have to think about (a forwarded host, none at all)."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        return False
    host = environ.get("HTTP_HOST")
    return host is not None and _served(host, tuple(settings.ALLOWED_HOSTS), settings.DEBUG)


@functools.lru_cache(maxsize=256)
def _served(host: str, allowed_hosts: tuple[str, ...], debug: bool) -> bool:
    if debug and not allowed_hosts:
        allowed_hosts = (".localhost", "127.0.0.1", "[::1]")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts)


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer: its status, body and the headers of its own (Retry-After)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@functools.lru_cache(maxsize=1024)
def _refusal(status: int, items: tuple, retry_after: float | None) -> Answer:
    # A refusal's body, encoded once: a bot may be refused thousands of times a second.
    headers = tuple(retry_headers(retry_after)) if retry_after is not None else ()
    return Answer(status, json.dumps(dict(items)).encode(), headers)


def refusal(status: int, body: dict, retry_after: float | None = None) -> Answer:
    items, seconds = tuple(body.items()), None if retry_after is None else max(1, math.ceil(retry_after))
    try:
        return _refusal(status, items, seconds)
    except TypeError:  # A detail that cannot be a key: encoded every time.
        return _refusal.__wrapped__(status, items, seconds)


STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class PurchaseDoor:
    """The WSGI application in front of `application` (Django's): bearer-token purchases on the
    usual path are answered here, everything else there."""

    def __init__(self, application):
        self.application = application
        metrics = Metrics.get_instance()
        self.requests = metrics.requests_total
        self.requests_by_view = metrics.requests_by_view_transport_method.labels(VIEW_NAME, "http", "POST")
        self.responses = metrics.responses_total
        self.responses_by_status = metrics.responses_by_status_view_method
        self.latency = metrics.requests_latency_by_view_method.labels(VIEW_NAME, "POST")
        self.by_status = {}

    def __call__(self, environ, start_response):
        if not takes(environ):
            return self.application(environ, start_response)
        started = time.perf_counter()
        attempt = attempt_read(environ)
        if attempt is None:
            return self.application(environ, start_response)
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        token = request_id_var.set(request_id)
        try:
            answer, decision = self.answer(attempt)
        except Exception:
            logger.exception("the purchase door failed; the full stack answers")
            return self.application(environ, start_response)
        finally:
            request_id_var.reset(token)
            # What Django's handler does when a request finishes: a connection that failed or
            # outlived CONN_MAX_AGE is closed.
            close_old_connections()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(answer.body))),
            ("X-Request-ID", request_id),
            *answer.headers,
            *rate_limit_headers(decision, answer.headers),
        ]
        start_response(STATUS_LINES[answer.status], headers)
        self.requests.inc()
        self.requests_by_view.inc()
        self.responses.inc()
        self.responses_of(answer.status).inc()
        self.latency.observe(time.perf_counter() - started)
        return [answer.body]

    def responses_of(self, status: int):
        """The counter of answers by status, resolved once per status."""
        counter = self.by_status.get(status)
        if counter is None:
            counter = self.by_status[status] = self.responses_by_status.labels(str(status), VIEW_NAME, "POST")
        return counter

    def answer(self, attempt: Attempt) -> tuple[Answer, Decision]:
        limits = limits_for("purchase", {"ip": attempt.address, "user": str(attempt.user_id)})
        decision = local_buckets.take(limits) if limits else None
        if decision is not None and not decision.allowed:
            return refusal(429, RATE_LIMITED, decision.retry_after), decision
        try:
            screened = purchase_screen(
                sale_id=attempt.sale_id,
                user_id=attempt.user_id,
                purchase_pass=attempt.purchase_pass,
                queue_ticket=attempt.queue_ticket,
                address=attempt.address,
            )
            reservation_id = purchase_admit(
                sale_id=attempt.sale_id,
                user_id=attempt.user_id,
                quantity=attempt.quantity,
                idempotency_key=attempt.key,
                limits=limits,
                address=attempt.address,
                screened=screened,
            )
        except DomainError as error:
            status, body = domain_error(error)
            return refusal(status, body, getattr(error, "retry_after", None)), decision
        except DEPENDENCY_ERRORS:
            return refusal(*dependency_unavailable()), decision
        body = json.dumps({"reservation_id": reservation_id, "status": "pending"}).encode()
        return Answer(202, body), decision
