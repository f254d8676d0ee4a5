"""The purchase funnel in one process: admission in Redis, the writer run in-process."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.redis import redis_client
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.services import order_cancel
from orders.writer import order_writer_drain
from shop.models import FlashSale
from shop.services import flash_sale_preheat, flash_sale_reconcile
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def drain(sale) -> None:
    assert order_writer_drain(sale_id=sale.pk, consumer="test")


def result(client, reservation_id: str) -> dict:
    response = client.get(f"/api/v1/purchases/{reservation_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def test_accepted_purchase_becomes_a_confirmed_order(make_sale, brokered):
    sale = make_sale(quantity=5)
    client = client_for(UserFactory())

    response = purchase(client, sale, key="k1")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert result(client, body["reservation_id"])["status"] == "pending"
    assert redis_sales.sale_remaining(sale.pk) == 4

    drain(sale)

    answer = result(client, body["reservation_id"])
    order = Order.objects.get()
    assert answer == {"reservation_id": body["reservation_id"], "status": "confirmed", "order_id": order.pk,
                      "reason": None}  # fmt: skip
    sale.refresh_from_db()
    assert sale.units_sold == 1
    assert order.total == sale.price
    assert check_invariants().ok, check_invariants().violations


def test_the_eager_drain_task_writes_the_order_at_once(make_sale):
    sale = make_sale(quantity=5)
    client = client_for(UserFactory())

    response = purchase(client, sale, key="k1")

    assert result(client, response.json()["reservation_id"])["status"] == "confirmed"


def test_sold_out_and_limit_are_409_with_their_codes(make_sale):
    sale = make_sale(quantity=2, limit=1)
    first, second, third = (client_for(UserFactory()) for _ in range(3))

    assert purchase(first, sale, key="a").status_code == 202
    limit = purchase(first, sale, key="b")
    assert (limit.status_code, limit.json()["code"]) == (409, "limit_exceeded")
    assert purchase(second, sale, key="a").status_code == 202
    sold_out = purchase(third, sale, key="a")
    assert (sold_out.status_code, sold_out.json()["code"]) == (409, "sold_out")
    assert check_invariants().ok


def test_a_sale_not_started_or_ended_says_so(make_sale):
    upcoming = make_sale(starts_in=300)
    client = client_for(UserFactory())

    response = purchase(client, upcoming, key="a")
    assert (response.status_code, response.json()["code"]) == (409, "not_started")

    # A sale whose end passed a minute ago, not yet closed by the beat task
    ended = make_sale(starts_in=-120)
    FlashSale.objects.filter(pk=ended.pk).update(ends_at=timezone.now() - timedelta(minutes=1))
    flash_sale_preheat(sale=ended)
    response = purchase(client, ended, key="b")
    assert (response.status_code, response.json()["code"]) == (409, "ended")


def test_the_same_idempotency_key_returns_the_first_answer(make_sale):
    sale = make_sale(quantity=5, limit=3)
    client = client_for(UserFactory())

    first = purchase(client, sale, key="same")
    again = purchase(client, sale, key="same")

    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    assert Order.objects.count() == 1
    assert redis_sales.sale_remaining(sale.pk) == 4


def test_the_same_key_with_another_quantity_is_422(make_sale):
    sale = make_sale(quantity=5, limit=3)
    client = client_for(UserFactory())
    purchase(client, sale, key="same")

    response = purchase(client, sale, key="same", quantity=2)

    assert (response.status_code, response.json()["code"]) == (422, "idempotency_key_reused")


def test_a_refusal_is_replayed_too(make_sale):
    sale = make_sale(quantity=1)
    purchase(client_for(UserFactory()), sale, key="x")
    late = client_for(UserFactory())

    assert purchase(late, sale, key="late").json()["code"] == "sold_out"
    assert purchase(late, sale, key="late").json()["code"] == "sold_out"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"quantity": 1}, {}, 400, "idempotency_key_required"),
        ({"quantity": 1}, {"HTTP_IDEMPOTENCY_KEY": "x" * 256}, 400, "idempotency_key_invalid"),
        ({"quantity": 1}, {"HTTP_IDEMPOTENCY_KEY": "bad\u00e9key"}, 400, "idempotency_key_invalid"),
        ({"quantity": 0}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ({"quantity": -1}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ({"quantity": "1"}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ({"quantity": 1.5}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ({"quantity": 10**9}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ({}, {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
        ([1], {"HTTP_IDEMPOTENCY_KEY": "k"}, 400, "invalid"),
    ],
)
def test_bad_purchase_input_is_a_json_4xx_and_takes_nothing(make_sale, body, headers, status, code):
    sale = make_sale(quantity=5)
    client = client_for(UserFactory())

    response = client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", body, format="json", **headers)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert redis_sales.sale_remaining(sale.pk) == 5
    assert not redis_sales.reservations_in_stream(sale.pk)


def test_purchase_needs_a_login_and_a_real_sale(make_sale, api_client):
    sale = make_sale()
    assert purchase(api_client, sale, key="k").status_code == 401
    response = client_for(UserFactory()).post(
        "/api/v1/flash-sales/999999/purchase/", {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_result_of_someone_elses_or_a_forged_reservation_is_404(make_sale):
    sale = make_sale()
    owner, other = client_for(UserFactory()), client_for(UserFactory())
    rid = purchase(owner, sale, key="k").json()["reservation_id"]
    forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")

    assert other.get(f"/api/v1/purchases/{rid}/").status_code == 404
    assert owner.get(f"/api/v1/purchases/{forged}/").status_code == 404
    assert owner.get("/api/v1/purchases/not-an-id/").status_code == 404


def test_redis_flushed_mid_sale_rebuilds_from_the_database_and_never_oversells(make_sale, redis_client, brokered):
    sale = make_sale(quantity=10, limit=1)
    # Given 3 written orders and 3 reservations still waiting for the writer
    written = [purchase(client_for(UserFactory()), sale, key="k").json()["reservation_id"] for _ in range(3)]
    drain(sale)
    waiting_clients = [client_for(UserFactory()) for _ in range(3)]
    waiting = [purchase(client, sale, key="k").json()["reservation_id"] for client in waiting_clients]

    # When Redis loses everything
    redis_client.flushdb()

    # Then the waiting reservations report failed, and the written ones stay confirmed
    for client, rid in zip(waiting_clients, waiting, strict=True):
        assert result(client, rid) == {"reservation_id": rid, "status": "failed", "order_id": None, "reason": "lost"}
    assert Order.objects.filter(reservation_id__in=written).count() == 3

    # When shoppers come back, the next admission rebuilds the sale from the database
    outcomes = [purchase(client_for(UserFactory()), sale, key="k").status_code for _ in range(9)]
    drain(sale)

    # Then exactly the 7 units the database still had are sold, no more
    assert outcomes.count(202) == 7
    assert outcomes.count(409) == 2
    sale.refresh_from_db()
    assert sale.units_sold == Order.objects.count() == 10
    assert redis_sales.sale_remaining(sale.pk) == 0
    assert check_invariants().ok, check_invariants().violations


def test_database_refusal_becomes_a_failed_result_and_the_unit_goes_back(make_sale, brokered):
    sale = make_sale(quantity=3, limit=1)
    client = client_for(UserFactory())
    rid = purchase(client, sale, key="k").json()["reservation_id"]
    # Redis is wrong about this user (drift): the database already has their unit
    drain(sale)
    redis_sales.sale_release_units(sale_id=sale.pk, user_id=client.handler._force_user.pk, quantity=1)
    redis_client().incrby(redis_sales.SaleKeys(sale.pk).remaining, -1)
    second = purchase(client, sale, key="k2").json()["reservation_id"]

    drain(sale)

    assert result(client, rid)["status"] == "confirmed"
    assert result(client, second) == {"reservation_id": second, "status": "failed", "order_id": None,
                                      "reason": FailedReservation.Reason.LIMIT_EXCEEDED}  # fmt: skip
    assert redis_sales.sale_remaining(sale.pk) == 2
    assert check_invariants().ok, check_invariants().violations


def test_the_database_path_remembers_its_refusals_too(make_sale, settings):
    # Given a sold-out sale on the database path, and a shopper refused under key K
    settings.PURCHASE_ADMISSION = "database"
    sale = make_sale(quantity=1, limit=1)
    purchase(client_for(UserFactory()), sale, key="first")
    late = client_for(UserFactory())
    assert purchase(late, sale, key="K").json()["code"] == "sold_out"

    # When the unit comes back
    order_cancel(order=Order.objects.get(), actor=None, reason="changed mind")

    # Then K still gets its first answer, another body with K is 422, and a new key buys
    assert purchase(late, sale, key="K").json()["code"] == "sold_out"
    assert purchase(late, sale, key="K", quantity=2).json()["code"] == "idempotency_key_reused"
    assert purchase(late, sale, key="K2").status_code == 202
    flash_sale_reconcile(sale=sale)  # Redis counts the database path's orders once reconciled.
    assert check_invariants().ok, check_invariants().violations
