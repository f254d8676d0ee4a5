"""The purchase door: `POST /api/v1/flash-sales/{id}/purchase/` with a bearer token, in plain WSGI
(core/door.py).

The purchase is the one request that arrives ten thousand times a second. This door calls the
decisions the API view calls, in the same order: the rate limiter's per-process bucket, the
screen (blocks, the purchase pass, the waiting room's turn), then `purchase_admit`, whose script
takes the shared buckets, the idempotency key and the unit in one round trip. It answers with the
same bodies and headers (request id, `RateLimit-*`, `Retry-After`) and counts the same metrics.

Anything off the usual path it leaves to the full stack, before it has done anything: a token
that does not verify, a body that is not a JSON object with a quantity in bounds, a missing or
malformed Idempotency-Key, a sale the shop does not know (or a database it cannot ask), the
database-only admission, and whatever every door hands on. An unexpected exception hands the
request on too: its rate limiter counts the attempt a second time, stricter, never looser. A
session-authenticated purchase (the storefront, with CSRF) never comes here. PURCHASE_DOOR=0
sends every purchase through the full stack.
"""

import functools
import json
import math
from dataclasses import dataclass
from io import BytesIO

from rest_framework.exceptions import APIException
from rest_framework_simplejwt.exceptions import TokenError

from core.addresses import client_ip_from
from core.api.authentication import token_claims
from core.api.errors import DEPENDENCY_ERRORS, dependency_unavailable, domain_error, retry_headers
from core.api.idempotency import idempotency_key_from
from core.api.parsers import json_parse
from core.conf import hot_settings
from core.door import Answer, Door
from core.exceptions import DomainError
from core.paths import PURCHASE_API_PATH
from limits.buckets import Decision, local_buckets
from limits.middleware import RATE_LIMITED, limits_for, rate_limit_headers
from purchase.admission import purchase_admit, purchase_screen
from purchase.api.serializers import PurchaseInputSerializer
from purchase.terms import flash_sale_terms
from shop.models import FlashSale

# The serializer's own field, read once: its bounds are the API's.
QUANTITY = PurchaseInputSerializer().fields["quantity"]


class PurchaseDoor(Door):
    """Bearer-token purchases on the usual path, answered here."""

    view_name = "flash-sale-purchase"  # The full stack's name for the same endpoint.
    method = "POST"

    def takes(self, environ: dict) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "POST"
            and environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")
            and PURCHASE_API_PATH.match(environ.get("PATH_INFO", "")) is not None
        )

    def answer(self, environ: dict) -> Answer | None:
        attempt = attempt_read(environ)
        if attempt is None:
            return None
        answer, decision = purchase_answer(attempt)
        limited = rate_limit_headers(decision, answer.headers)
        return Answer(answer.status, answer.body, answer.headers + tuple(limited)) if limited else answer


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
    if hot_settings.PURCHASE_ADMISSION == "database":
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
    if not 0 < length <= hot_settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
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


def purchase_answer(attempt: Attempt) -> tuple[Answer, Decision | None]:
    """The API's answer to the attempt, and the rate limiter's decision on it."""
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
    # Formatted, not encoded: a reservation id is digits and hex (purchase/reservations.py).
    return Answer(202, f'{{"reservation_id": "{reservation_id}", "status": "pending"}}'.encode()), decision
