import time

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from core.breaker import redis_breaker
from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate
from orders.invariants import check_invariants
from orders.models import Order
from orders.services import order_cancel
from orders.writer import order_writer_drain
from purchase.reservations import reservation_id_new
from tests.conftest import client_for, purchase, redis_commands
from tests.factories import UserFactory
from tests.processes import http, running_web_server, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admission_calls(monkeypatch):
    """Counts calls of the admission script; each still runs for real."""
    calls = []
    real = redis_sales.reservation_admit

    def counting(**kwargs):
        calls.append(kwargs["sale_id"])
        return real(**kwargs)

    monkeypatch.setattr(redis_sales, "reservation_admit", counting)
    return calls


def test_after_sell_out_the_gate_refuses_without_the_admission_script(make_sale, admission_calls, brokered):
    sale = make_sale(quantity=1)
    winner = client_for(UserFactory())
    first = purchase(winner, sale, key="w")
    assert purchase(client_for(UserFactory()), sale, key="x").json()["code"] == "sold_out"
    assert len(admission_calls) == 2

    late = [purchase(client_for(UserFactory()), sale, key="y") for _ in range(5)]

    assert [(r.status_code, r.json()["code"]) for r in late] == [(409, "sold_out")] * 5
    assert len(admission_calls) == 2
    # A repeat of the winner's request still gets its first answer, from a plain read
    assert purchase(winner, sale, key="w").json() == first.json()
    assert len(admission_calls) == 2


def test_the_crowd_at_a_sold_out_sale_costs_no_round_trip_and_repeats_get_their_first_answer(
    make_sale, redis_client, settings
):
    settings.SALE_GATE_SECONDS = 60  # only what the gate hears opens it during the test
    sale = make_sale(quantity=2, limit=1)
    winner, refused, crowd = client_for(UserFactory()), client_for(UserFactory()), UserFactory()
    first = purchase(winner, sale, key="w")
    assert purchase(client_for(UserFactory()), sale, key="x").status_code == 202
    # Given a shopper whose first answer, remembered in Redis, is not sold out
    assert purchase(refused, sale, key="r", quantity=2).json()["code"] == "limit_exceeded"
    assert purchase(client_for(UserFactory()), sale, key="s").json()["code"] == "sold_out"

    # When the crowd comes, no request of it reaches Redis
    before = redis_commands(redis_client)
    late = [purchase(client_for(crowd), sale, key=f"c{i}") for i in range(5)]
    assert [(r.status_code, r.json()["code"]) for r in late] == [(409, "sold_out")] * 5
    assert redis_commands(redis_client) == before

    # Then the shoppers with a first answer still get it, from Redis
    assert purchase(winner, sale, key="w").json() == first.json()
    assert purchase(refused, sale, key="r", quantity=2).json()["code"] == "limit_exceeded"
    assert redis_commands(redis_client) - before > 2


def test_a_purchase_another_process_admits_while_the_gate_is_closed_is_replayed_here(make_sale, settings):
    settings.SALE_GATE_SECONDS = 60
    sale = make_sale(quantity=1, limit=1)
    winner = UserFactory()
    assert purchase(client_for(winner), sale, key="w").status_code == 202
    assert purchase(client_for(UserFactory()), sale, key="x").json()["code"] == "sold_out"
    assert sale_gate.refusal(sale.pk) == "sold_out"
    # Given a unit back in Redis that this process has not heard of (its reopen is still on the
    # way), and another process admitting a shopper with it
    shopper = UserFactory()
    assert redis_sales.sale_release_units(sale_id=sale.pk, user_id=winner.pk, quantity=1) == 1
    rid = reservation_id_new(sale_id=sale.pk, user_id=shopper.pk, idempotency_key="k")
    admitted = redis_sales.reservation_admit(
        sale_id=sale.pk, user_id=shopper.pk, quantity=1, reservation_id=rid, idempotency_key="k"
    )
    assert admitted.outcome == "accepted"

    # When the shopper sends the request again to this process, whose gate is still closed
    again = purchase(client_for(shopper), sale, key="k")

    # Then they get their first answer, not the gate's sold out
    assert (again.status_code, again.json()["reservation_id"]) == (202, rid)
    assert sale_gate.refusal(sale.pk) == "sold_out"
    assert purchase(client_for(UserFactory()), sale, key="y").json()["code"] == "sold_out"


def test_a_gate_whose_subscription_broke_forgets_what_it_knew(make_sale, redis_client, admissions, settings):
    settings.SALE_GATE_SECONDS = 60
    sale = make_sale(quantity=1, limit=1)
    assert purchase(client_for(UserFactory()), sale, key="w").status_code == 202
    assert purchase(client_for(UserFactory()), sale, key="x").json()["code"] == "sold_out"
    assert purchase(client_for(UserFactory()), sale, key="y").json()["code"] == "sold_out"
    assert len(admissions) == 2

    # When Redis drops the gate's subscription, whatever was published since may be lost
    assert redis_client.client_kill_filter(_type="pubsub") >= 1

    # Then the gate trusts nothing it knew: the next request asks Redis again
    assert purchase(client_for(UserFactory()), sale, key="z").json()["code"] == "sold_out"
    assert len(admissions) == 3


def test_units_coming_back_reopen_the_gate_at_once(make_sale, admission_calls, brokered):
    sale = make_sale(quantity=1)
    buyer = UserFactory()
    purchase(client_for(buyer), sale, key="k")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    assert purchase(client_for(UserFactory()), sale, key="k").json()["code"] == "sold_out"

    order_cancel(order=Order.objects.get(), actor=None, reason="changed mind")

    assert purchase(client_for(UserFactory()), sale, key="k").status_code == 202


def test_a_restock_reopens_the_sale_in_every_process(make_sale, brokered, tmp_path):
    # Given two server processes whose gate flags would otherwise live a minute
    sale = make_sale(quantity=2, limit=1)
    env = {"SALE_GATE_SECONDS": "60"}
    with running_web_server(tmp_path, "a", **env) as a, running_web_server(tmp_path, "b", **env) as b:

        def buy(base: str, user, key: str) -> int:
            headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}", "Idempotency-Key": key,
                       "Content-Type": "application/json"}  # fmt: skip
            return http("POST", f"{base}/api/v1/flash-sales/{sale.pk}/purchase/", headers, b'{"quantity": 1}')[0]

        first, second, third, fourth = (UserFactory() for _ in range(4))
        assert [buy(a, first, "k"), buy(b, second, "k")] == [202, 202]
        # And both processes have learnt that the sale is sold out
        assert [buy(a, third, "k1"), buy(b, fourth, "k1")] == [409, 409]
        order_writer_drain(sale_id=sale.pk, consumer="test")

        # When both orders are cancelled, their units go back on sale
        for order in Order.objects.all():
            order_cancel(order=order, actor=None, reason="payment failed")

        # Then each process sells again, well before its flag would have expired
        started = time.monotonic()
        wait_for(lambda: buy(a, third, f"k{time.monotonic()}") == 202, timeout=10, what="process a to reopen")
        wait_for(lambda: buy(b, fourth, f"k{time.monotonic()}") == 202, timeout=10, what="process b to reopen")
        assert time.monotonic() - started < 60


def test_redis_unreachable_answers_503_and_the_breaker_opens(make_sale, settings):
    sale = make_sale(quantity=5)
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    client = client_for(UserFactory())

    answers = [purchase(client, sale, key=f"k{i}") for i in range(settings.REDIS_BREAKER_FAILURES + 3)]

    assert {(r.status_code, r.json()["code"]) for r in answers} == {(503, "unavailable")}
    assert redis_breaker.is_open
    assert not Order.objects.exists()


def test_with_the_database_fallback_purchases_go_on_without_redis(make_sale, settings):
    sale = make_sale(quantity=2, limit=1)
    settings.PURCHASE_DATABASE_FALLBACK = True
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    first, second, third = (client_for(UserFactory()) for _ in range(3))

    accepted = purchase(first, sale, key="a")
    assert accepted.status_code == 202
    assert purchase(first, sale, key="a").json() == accepted.json()
    assert purchase(first, sale, key="b").json()["code"] == "limit_exceeded"
    assert purchase(second, sale, key="a").status_code == 202
    assert purchase(third, sale, key="a").json()["code"] == "sold_out"

    result = first.get(f"/api/v1/purchases/{accepted.json()['reservation_id']}/").json()
    assert result["status"] == "confirmed"
    sale.refresh_from_db()
    assert sale.units_sold == 2
    assert Order.objects.count() == 2


def test_the_database_admission_path_sells_exactly_the_quantity(make_sale, settings):
    settings.PURCHASE_ADMISSION = "database"
    sale = make_sale(quantity=3, limit=1)

    statuses = [purchase(client_for(UserFactory()), sale, key="k").status_code for _ in range(5)]

    assert statuses == [202, 202, 202, 409, 409]
    assert Order.objects.filter(flash_sale=sale).count() == 3
    # Redis counts what the database path sold, as it goes: a process still on the Redis path
    # (a fleet switching paths) cannot sell those units again, and no reconcile is needed
    assert redis_sales.sale_remaining(sale.pk) == 0
    assert check_invariants().ok, check_invariants().violations


@pytest.mark.parametrize("admission", ["redis", "database"])
def test_a_real_bearer_token_buys_on_either_path(make_sale, settings, admission):
    settings.PURCHASE_ADMISSION = admission
    sale = make_sale(quantity=2)
    user = UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")

    response = purchase(client, sale, key="bearer")

    assert response.status_code == 202, response.json()
    assert response.json()["reservation_id"].split("-")[1] == str(user.pk)


def test_a_probe_that_fails_for_a_reason_other_than_redis_does_not_keep_the_breaker_open(make_sale, settings):
    # Given a breaker opened by real connection failures
    sale = make_sale(quantity=5)
    healthy = settings.CACHES["default"]
    settings.REDIS_BREAKER_RESET_SECONDS = 0.2
    settings.CACHES = {"default": {**healthy, "LOCATION": "redis://127.0.0.1:1/0"}}
    client = client_for(UserFactory())
    for i in range(settings.REDIS_BREAKER_FAILURES):
        purchase(client, sale, key=f"down{i}")
    assert redis_breaker.is_open

    # When Redis is back and the first call after the reset time (the probe) is for no sale
    settings.CACHES = {"default": healthy}
    time.sleep(0.25)
    unknown = client.post("/api/v1/flash-sales/987654/purchase/", {"quantity": 1}, format="json",
                          HTTP_IDEMPOTENCY_KEY="probe")  # fmt: skip
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")

    # Then the breaker is not stuck: the next purchase is admitted
    response = purchase(client, sale, key="after")
    assert response.status_code == 202, response.json()
    assert not redis_breaker.is_open
    assert check_invariants().ok, check_invariants().violations


def test_steady_refusals_do_not_keep_a_not_started_flag_past_the_start(make_sale, settings):
    # Given a sale that starts in a second, and a gate that remembers refusals for 0.3 s
    settings.SALE_GATE_SECONDS = 0.3
    sale = make_sale(quantity=5, starts_in=1)
    client = client_for(UserFactory())
    start = time.monotonic() + 1

    # When one shopper tries every 50 ms, before and after the start
    answers = []
    while time.monotonic() < start + 5:
        answers.append(purchase(client, sale, key=f"try{len(answers)}").status_code)
        if answers[-1] == 202:
            break
        time.sleep(0.05)

    # Then the answers the gate served did not keep it closed: the shopper got in
    assert answers[0] == 409
    assert answers[-1] == 202
    assert check_invariants().ok, check_invariants().violations


def test_a_replayed_refusal_does_not_close_the_gate_for_everyone(make_sale, settings):
    settings.SALE_GATE_SECONDS = 0.3
    sale = make_sale(quantity=5, starts_in=0.5)
    early, other = client_for(UserFactory()), client_for(UserFactory())
    # Given a shopper refused "not started" before the start
    assert purchase(early, sale, key="K").json()["code"] == "not_started"
    time.sleep(0.9)  # Past the start, and past the flag's life.

    # When they replay the same request after the start, they get their first answer
    assert purchase(early, sale, key="K").json()["code"] == "not_started"

    # Then another shopper is not refused by a flag that replay set
    response = purchase(other, sale, key="C")
    assert response.status_code == 202, response.json()
    assert check_invariants().ok, check_invariants().violations
