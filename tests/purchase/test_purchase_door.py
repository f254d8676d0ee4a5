"""The purchase door (purchase/door.py), called as a web server calls the shop
(config.wsgi.application), against the full API view: one answer to one request, whichever door
it came through: status, body and the contract's headers."""

import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.test.client import RequestFactory
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import user_set_active
from config import wsgi
from config.lanes import probe_takes
from config.wsgi import application
from inventory import redis_sales
from limits.buckets import local_buckets
from orders.invariants import check_invariants
from orders.models import Order
from orders.services import purchase_block_create
from purchase import admission, door
from purchase.waiting_room import waiting_room_join
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The headers the API contract gives a purchase's answer, and those every answer of the shop has.
CONTRACT_HEADERS = ("Content-Type", "X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining")
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")


def json_body(content: bytes) -> dict:
    """The answer's JSON, or what came instead (a server's HTML error page) for the assertion."""
    try:
        return json.loads(content)
    except ValueError:
        return {"code": None, "not_json": content[:80]}


def through_the_server(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
    """POST through the WSGI application (so a bearer purchase comes to the door); returns
    (status, headers, JSON body)."""
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    environ = RequestFactory().generic("POST", path, data=body, content_type="application/json", **meta).environ
    environ.setdefault("HTTP_HOST", "testserver")  # as every HTTP/1.1 client sends one
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = int(status.split()[0]), dict(response_headers)

    chunks = application(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return started["status"], started["headers"], json_body(content)


def through_the_full_view(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    client = APIClient()
    client.raise_request_exception = False  # a server error is answered 500, as a server does
    response = client.generic("POST", path, body, content_type="application/json", **meta)
    return response.status_code, dict(response.headers), json_body(response.content)


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


@dataclass
class Shape:
    """An answer shape: the sale, what the shopper did before, the request, and the settings."""

    sale: dict = field(default_factory=dict)
    before: str = ""  # what the shopper (or another) did first, through the same door
    body: bytes = b'{"quantity": 1}'
    headers: dict = field(default_factory=dict)
    path: str = ""  # another path than the sale's purchase
    settings: dict = field(default_factory=dict)
    redis_away: bool = False
    handed_on: bool = False  # to the full stack, by the door, untouched


WAVE_AT = timezone.now() + timedelta(hours=1)
SHAPES = {
    "accepted": Shape(),
    "replayed": Shape(before="the same request"),
    "the key reused with another quantity": Shape(before="the same key", body=b'{"quantity": 2}'),
    "sold out": Shape(sale={"quantity": 1}, before="another buys the last unit"),
    "sold out until the next wave": Shape(
        sale={"quantity": 2, "in_waves": True, "lasts": 4 * 3600}, before="another buys the last unit"
    ),
    "limit exceeded": Shape(sale={"limit": 1}, before="a purchase"),
    "not started": Shape(sale={"starts_in": 3600}),
    "a deactivated account": Shape(before="deactivated"),
    "a blocked shopper": Shape(before="blocked by staff"),
    "an invalid purchase pass": Shape(sale={"requires_pass": True}, headers={"Purchase-Pass": "1-2-3-4-forged"}),
    "not yet their turn": Shape(sale={"waiting_room": True}, before="in the line behind others"),
    "rate limited by the process's bucket": Shape(
        before="a purchase", settings={"RATE_LIMITS": {"purchase": {"user": (0.001, 1)}}}
    ),
    "rate limited by the shared bucket": Shape(
        before="a purchase through another process", settings={"RATE_LIMITS": {"purchase": {"user": (0.001, 1)}}}
    ),
    "redis away": Shape(redis_away=True),
    "redis away while the line is asked": Shape(
        sale={"waiting_room": True}, before="in the line behind others", redis_away=True
    ),
    "redis away, sold through the database": Shape(redis_away=True, settings={"PURCHASE_DATABASE_FALLBACK": True}),
    "malformed JSON": Shape(body=b'{"quantity": ', handed_on=True),
    "JSON nested too deep": Shape(body=b"[" * 100_000, handed_on=True),
    "a list, not an object": Shape(body=b'[{"quantity": 1}]', handed_on=True),
    "quantity a string": Shape(body=b'{"quantity": "1"}', handed_on=True),
    "quantity 1.0": Shape(body=b'{"quantity": 1.0}', handed_on=True),
    "quantity too large": Shape(body=b'{"quantity": 1000000}', handed_on=True),
    "an oversized body": Shape(body=b'{"quantity": 1, "pad": "' + b"x" * 100_000 + b'"}', handed_on=True),
    "no Idempotency-Key": Shape(headers={"Idempotency-Key": None}, handed_on=True),
    "an Idempotency-Key too long": Shape(headers={"Idempotency-Key": "k" * 256}, handed_on=True),
    "a bad token": Shape(headers={"Authorization": "Bearer not-a-token"}, handed_on=True),
    "no such sale": Shape(path="/api/v1/flash-sales/987654/purchase/", handed_on=True),
    "a host the shop does not serve": Shape(
        headers={"Host": "evil.example.net"}, settings={"ALLOWED_HOSTS": ["testserver"]}, handed_on=True
    ),
}


def world(shape: Shape, send, make_sale, staff) -> tuple[str, dict]:
    """A sale and a shopper in the state the shape asks for, reached through `send`; returns
    the request's path and headers."""
    terms = dict(shape.sale)
    if terms.pop("in_waves", False):  # one unit now, the other at WAVE_AT, the same in both worlds
        terms["waves"] = [(timezone.now() - timedelta(seconds=30), 1), (WAVE_AT, 1)]
    if terms.pop("waiting_room", False):
        terms |= {"waiting_room_opens_at": timezone.now() - timedelta(minutes=2), "let_through_per_second": 1}
    sale = make_sale(**{"quantity": 5, "limit": 3, **terms})
    user = UserFactory()
    path = shape.path or f"/api/v1/flash-sales/{sale.pk}/purchase/"
    headers = {**bearer(user), "Idempotency-Key": "k", "X-Request-ID": "door-request-0001", **shape.headers}
    headers = {name: value for name, value in headers.items() if value is not None}
    if shape.before == "the same request":
        send(path, headers, shape.body)
    elif shape.before == "the same key":
        send(path, headers, b'{"quantity": 1}')
    elif shape.before == "another buys the last unit":
        send(path, {**bearer(UserFactory()), "Idempotency-Key": "first"}, b'{"quantity": 1}')
    elif shape.before == "a purchase":
        send(path, {**headers, "Idempotency-Key": "first"}, b'{"quantity": 1}')
    elif shape.before == "a purchase through another process":
        send(path, {**headers, "Idempotency-Key": "first"}, b'{"quantity": 1}')
        local_buckets.clear()  # Another process's bucket has room; Redis's has none.
    elif shape.before == "deactivated":
        user_set_active(user=user, active=False)
    elif shape.before == "blocked by staff":
        purchase_block_create(actor=staff, account=user, reason="resold the last drop")
    elif shape.before == "in the line behind others":
        for ahead in range(10**9, 10**9 + 100):
            waiting_room_join(sale_id=sale.pk, user_id=ahead)
        headers["Queue-Ticket"] = waiting_room_join(sale_id=sale.pk, user_id=user.pk).ticket
    return path, headers


def comparable(answer: tuple[int, dict, dict]) -> tuple:
    status, headers, body = answer
    if "reservation_id" in body:  # <sale>-<shopper>-<digest>-<signature>: each world's own ids.
        body = {**body, "reservation_id": [len(part) for part in body["reservation_id"].split("-")[2:]]}
    return status, {name: headers.get(name) for name in CONTRACT_HEADERS + SECURITY_HEADERS}, body


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_both_doors_give_the_same_answer(shape, make_sale, staff, settings, monkeypatch):
    for name, value in shape.settings.items():
        setattr(settings, name, value)
    handed_on = []
    full_stack = wsgi.purchase_door.application

    def handed(environ, start_response):
        handed_on.append(environ["PATH_INFO"])
        return full_stack(environ, start_response)

    monkeypatch.setattr(wsgi.purchase_door, "application", handed)
    answers = []
    for send in (through_the_server, through_the_full_view):
        # Given the same world twice, each reached through one door
        path, headers = world(shape, send, make_sale, staff)
        reachable = settings.CACHES
        if shape.redis_away:
            settings.CACHES = {"default": {**reachable["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
        # When the request comes through that door
        handed_on.clear()
        answers.append(send(path, headers, shape.body))
        settings.CACHES = reachable
        if send is through_the_server:
            assert bool(handed_on) == shape.handed_on, "handed on" if handed_on else "answered by the door"

    # Then the answers are one: status, body and the contract's headers
    by_the_door, by_the_full_view = answers
    assert comparable(by_the_door) == comparable(by_the_full_view)
    assert by_the_door[0] != 500, by_the_door


def test_the_door_serves_a_bearer_purchase_and_its_replay(make_sale):
    sale = make_sale(quantity=5)
    user = UserFactory()
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"
    headers = {**bearer(user), "Idempotency-Key": "door-1", "X-Request-ID": "door-request-0001"}
    assert wsgi.purchase_door.takes(RequestFactory().post(path, HTTP_AUTHORIZATION=headers["Authorization"]).environ)

    status, response_headers, body = through_the_server(path, headers, b'{"quantity": 1}')
    again = through_the_server(path, headers, b'{"quantity": 1}')

    assert (status, body["status"]) == (202, "pending")
    assert (again[0], again[2]) == (202, body)
    assert response_headers["X-Request-ID"] == "door-request-0001"
    assert Order.objects.get().reservation_id == body["reservation_id"]  # the eager writer ran
    assert redis_sales.sale_remaining(sale.pk) == 4
    assert check_invariants().ok, check_invariants().violations


def test_the_door_hands_an_unexpected_failure_to_the_full_stack(make_sale, monkeypatch):
    # Given a purchase whose screening fails in a way no one expected, once
    sale = make_sale(quantity=5)
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"
    screen = door.purchase_screen
    failures = []

    def fails_once(**kwargs):
        if not failures:
            failures.append(kwargs)
            raise RuntimeError("a defect")
        return screen(**kwargs)

    monkeypatch.setattr(door, "purchase_screen", fails_once)

    status, _, body = through_the_server(path, {**bearer(UserFactory()), "Idempotency-Key": "k"}, b'{"quantity": 1}')

    # Then the full stack answered it, and the purchase was admitted once
    assert len(failures) == 1
    assert (status, body["status"]) == (202, "pending")
    assert redis_sales.sale_remaining(sale.pk) == 4


def test_the_door_answers_503_when_postgresql_is_away_for_a_processs_first_purchase(make_sale, monkeypatch):
    sale = make_sale(quantity=5)
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"

    def database_away(sale_id):
        raise OperationalError("the database system is starting up")

    monkeypatch.setattr(door, "flash_sale_terms", database_away)
    monkeypatch.setattr(admission, "flash_sale_terms", database_away)

    status, _, body = through_the_server(path, {**bearer(UserFactory()), "Idempotency-Key": "k"}, b'{"quantity": 1}')

    assert (status, body["code"]) == (503, "unavailable")


def test_a_session_purchase_is_not_the_doors():
    environ = RequestFactory().post("/api/v1/flash-sales/1/purchase/", HTTP_COOKIE="sessionid=abc").environ

    assert not wsgi.purchase_door.takes(environ)


def test_the_doors_purchases_are_counted_with_the_full_stacks(make_sale):
    sale = make_sale(quantity=1, limit=1)
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"

    def counted() -> tuple[float, ...]:
        view = {"view": "flash-sale-purchase", "method": "POST"}
        samples = [
            ("django_http_requests_total_by_view_transport_method_total", {**view, "transport": "http"}),
            ("django_http_responses_total_by_status_view_method_total", {**view, "status": "202"}),
            ("django_http_responses_total_by_status_view_method_total", {**view, "status": "409"}),
            ("django_http_requests_latency_seconds_by_view_method_count", view),
        ]
        return tuple(REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in samples)

    before = counted()
    through_the_server(path, {**bearer(UserFactory()), "Idempotency-Key": "a"}, b'{"quantity": 1}')
    through_the_full_view(path, {**bearer(UserFactory()), "Idempotency-Key": "b"}, b'{"quantity": 1}')

    # One accepted through the door, one sold out through the full view: both counted alike.
    assert [after - was for after, was in zip(counted(), before, strict=True)] == [2, 1, 1, 2]


def test_livez_is_answered_by_the_probe_lane_with_a_request_id():
    environ = RequestFactory().get("/livez", HTTP_X_REQUEST_ID="probe-0001").environ
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = status, dict(response_headers)

    assert probe_takes(environ)
    assert not probe_takes(RequestFactory().post("/livez").environ)
    body = b"".join(application(environ, start_response))
    assert (started["status"], json.loads(body)) == ("200 OK", {"status": "ok"})
    assert started["headers"]["X-Request-ID"] == "probe-0001"
