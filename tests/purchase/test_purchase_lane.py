"""The purchase lane, called as a web server calls the shop (config.wsgi.application), against
the full API view: the same answers for the same requests."""

import json

import pytest
from django.test.client import RequestFactory
from prometheus_client import REGISTRY
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from config.lanes import probe_takes
from config.wsgi import application
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import Order
from purchase import lane
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def json_body(content: bytes) -> dict:
    """The answer's JSON, or what came instead (a server's HTML error page) for the assertion."""
    try:
        return json.loads(content)
    except ValueError:
        return {"code": None, "not_json": content[:80]}


def through_the_server(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
    """POST through the WSGI application (so a bearer purchase takes the lane); returns (status,
    headers, JSON body)."""
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    environ = RequestFactory().generic("POST", path, data=body, content_type="application/json", **meta).environ
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = int(status.split()[0]), dict(response_headers)

    chunks = application(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
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


def test_the_lane_serves_a_bearer_purchase_and_its_replay(make_sale):
    sale = make_sale(quantity=5)
    user = UserFactory()
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"
    headers = {**bearer(user), "Idempotency-Key": "lane-1", "X-Request-ID": "lane-request-0001"}
    assert lane.takes(RequestFactory().post(path, HTTP_AUTHORIZATION=headers["Authorization"]).environ)

    status, response_headers, body = through_the_server(path, headers, b'{"quantity": 1}')
    again = through_the_server(path, headers, b'{"quantity": 1}')

    assert (status, body["status"]) == (202, "pending")
    assert (again[0], again[2]) == (202, body)
    assert response_headers["X-Request-ID"] == "lane-request-0001"
    assert Order.objects.get().reservation_id == body["reservation_id"]  # the eager writer ran
    assert redis_sales.sale_remaining(sale.pk) == 4
    assert check_invariants().ok, check_invariants().violations


@pytest.mark.parametrize(
    ("case", "body", "extra", "status", "code"),
    [
        ("no key", b'{"quantity": 1}', {"Idempotency-Key": None}, 400, "idempotency_key_required"),
        ("key too long", b'{"quantity": 1}', {"Idempotency-Key": "k" * 256}, 400, "idempotency_key_invalid"),
        ("quantity a string", b'{"quantity": "1"}', {}, 400, "invalid"),
        ("quantity too large", b'{"quantity": 1000000}', {}, 400, "invalid"),
        ("quantity zero", b'{"quantity": 0}', {}, 400, "invalid"),
        ("quantity true", b'{"quantity": true}', {}, 400, "invalid"),
        ("quantity 1.0", b'{"quantity": 1.0}', {}, 400, "invalid"),
        ("a list, not an object", b'[{"quantity": 1}]', {}, 400, "invalid"),
        ("malformed JSON", b'{"quantity": ', {}, 400, "parse_error"),
        ("a bad token", b'{"quantity": 1}', {"Authorization": "Bearer not-a-token"}, 401, "token_not_valid"),
        ("no such sale", b'{"quantity": 1}', {"sale": 987654}, 404, "not_found"),
        ("sold out", b'{"quantity": 1}', {"sold_out": True}, 409, "sold_out"),
        ("the key reused", b'{"quantity": 2}', {"reused": True}, 422, "idempotency_key_reused"),
    ],
)
def test_the_lane_answers_as_the_full_api_view_does(make_sale, case, body, extra, status, code):
    sale = make_sale(quantity=1 if extra.get("sold_out") else 5, limit=3)
    user = UserFactory()
    path = f"/api/v1/flash-sales/{extra.get('sale', sale.pk)}/purchase/"
    headers = {**bearer(user), "Idempotency-Key": "k"}
    headers.update({name: value for name, value in extra.items() if name in ("Idempotency-Key", "Authorization")})
    headers = {name: value for name, value in headers.items() if value is not None}
    if extra.get("sold_out"):
        through_the_server(path, {**bearer(UserFactory()), "Idempotency-Key": "first"}, b'{"quantity": 1}')
    if extra.get("reused"):
        through_the_server(path, headers, b'{"quantity": 1}')

    lane_answer = through_the_server(path, headers, body)
    full_answer = through_the_full_view(path, headers, body)

    assert (lane_answer[0], lane_answer[2]["code"]) == (status, code), lane_answer
    assert (full_answer[0], full_answer[2]) == (lane_answer[0], lane_answer[2])


def test_the_lane_rate_limits_purchases(make_sale, settings):
    sale = make_sale(quantity=10, limit=10)
    settings.RATE_LIMITS = {"purchase": {"user": (1.0, 2)}}
    user = UserFactory()
    path = f"/api/v1/flash-sales/{sale.pk}/purchase/"

    answers = [through_the_server(path, {**bearer(user), "Idempotency-Key": f"k{i}"}, b'{"quantity": 1}')
               for i in range(3)]  # fmt: skip

    assert [status for status, _, _ in answers] == [202, 202, 429]
    _, headers, body = answers[-1]
    assert body["code"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1
    assert redis_sales.sale_remaining(sale.pk) == 8


def test_a_session_purchase_is_not_the_lanes():
    environ = RequestFactory().post("/api/v1/flash-sales/1/purchase/", HTTP_COOKIE="sessionid=abc").environ

    assert not lane.takes(environ)


def test_the_lanes_purchases_are_counted_with_the_full_stacks(make_sale):
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

    # One accepted through the lane, one sold out through the full view: both counted alike.
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
