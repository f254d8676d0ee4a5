"""The order writer in real Celery worker processes against real PostgreSQL and Redis."""

import os
import signal
import time
from collections import Counter

import psycopg2
import pytest
from django.db import connection
from kombu import Connection

from accounts.models import User
from core.redis import redis_client
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.tasks import order_writer_drain
from purchase.admission import purchase_admit
from purchase.reservations import reservation_id_new
from tests.concurrency import run_together, storm
from tests.conftest import client_for, purchase
from tests.processes import database_url_for_processes, running_worker, start_worker, stop_shop_process, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_users(count: int) -> list[User]:
    return User.objects.bulk_create([User(username=f"crowd{i}", password="!") for i in range(count)])


def resolved(rids: list[str]) -> int:
    orders = Order.objects.filter(reservation_id__in=rids).count()
    return orders + FailedReservation.objects.filter(reservation_id__in=rids).count()


def test_storm_sells_exactly_the_sale_quantity(make_sale, brokered, tmp_path):
    # Given a live sale of 100 units, 400 shoppers, and one writer process running
    sale = make_sale(quantity=100, limit=1)
    users = make_users(400)
    clients = [client_for(user) for user in users]
    attempts = [(i % 400, f"attempt-{i}") for i in range(1000)]  # every shopper tries 2 or 3 times

    with running_worker(tmp_path) as worker:
        # When 1,000 purchase attempts arrive at once through the real view, 50 at a time
        started = time.monotonic()
        sent = storm(attempts, lambda attempt: purchase(clients[attempt[0]], sale, key=attempt[1]), threads=50)
        admission_seconds = time.monotonic() - started
        answers = [(user_index, response.status_code, response.json()) for (user_index, _), response in sent]

        accepted = [body["reservation_id"] for _, status, body in answers if status == 202]
        drain_started = time.monotonic()
        wait_for(lambda: resolved(accepted) == len(accepted), what="the writer to drain the storm")
        drain_seconds = time.monotonic() - drain_started
        total_seconds = time.monotonic() - started
        assert worker.poll() is None

    # Then every attempt got an answer, exactly 100 were accepted and became orders
    assert len(answers) == 1000
    assert {status for _, status, _ in answers} <= {202, 409}
    refusals = {body["code"] for _, status, body in answers if status == 409}
    assert refusals <= {"sold_out", "limit_exceeded"}
    assert len(accepted) == 100
    assert Order.objects.filter(flash_sale=sale).count() == 100
    assert not FailedReservation.objects.exists()
    # No shopper holds more than the limit, Redis has nothing left, and invariants 1-5 hold
    units_per_user = Counter(Order.objects.filter(flash_sale=sale).values_list("user_id", flat=True))
    assert max(units_per_user.values()) == 1
    assert redis_sales.sale_remaining(sale.pk) == 0
    assert not redis_sales.reservations_in_stream(sale.pk)
    report = check_invariants()
    assert report.ok, report.violations
    print(f"\nstorm: 1000 attempts admitted in {admission_seconds:.2f}s "
          f"({1000 / admission_seconds:.0f}/s through the test client, 50 threads); "
          f"all orders written {total_seconds:.2f}s after the first attempt, "
          f"{drain_seconds:.2f}s after the last")  # fmt: skip


def test_the_same_idempotency_key_sent_concurrently_makes_one_reservation(make_sale):
    sale = make_sale(quantity=10, limit=5)
    client = client_for(make_users(1)[0])

    answers = run_together(lambda _: purchase(client, sale, key="one-key"), 12)

    assert {response.status_code for response in answers} == {202}
    assert len({response.json()["reservation_id"] for response in answers}) == 1
    assert redis_sales.sale_remaining(sale.pk) == 9
    assert Order.objects.count() == 1


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _reachable(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=2) as broker:
            broker.ensure_connection(max_retries=0, timeout=2)
    except Exception:  # any failure to connect means "not here"
        return False
    return True


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request, settings, brokered) -> str:
    """Each broker the shop supports: the tests' Redis, and RabbitMQ (TEST_RABBITMQ_URL). Where
    no RabbitMQ runs, that half is skipped on a developer's machine and fails in CI (CI=1)."""
    if request.param == "redis":
        return settings.CELERY_BROKER_URL
    if not _reachable(RABBITMQ_URL):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no RabbitMQ at {RABBITMQ_URL}")
    with Connection(RABBITMQ_URL) as broker:
        broker.SimpleQueue("celery").clear()  # nothing a run before left behind
    return RABBITMQ_URL


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(make_sale, broker_url, tmp_path):
    # Given 150 accepted reservations waiting in the stream
    sale = make_sale(quantity=200, limit=1)
    users = make_users(150)
    rids = [purchase_admit(sale_id=sale.pk, user_id=user.pk, quantity=1, idempotency_key="k") for user in users]
    assert len(set(rids)) == 150

    # And a drain task for them on the broker (purchase_admit sent one to the tests' own broker)
    with Connection(broker_url) as broker:
        order_writer_drain.apply_async(args=[sale.pk], connection=broker)

    # And the sale's stock shard row locked by someone else, so a writer will stall inside its batch
    blocker = psycopg2.connect(database_url_for_processes())
    blocker.cursor().execute("SELECT 1 FROM shop_flashsaleshard WHERE flash_sale_id = %s FOR UPDATE", [sale.pk])

    # When a worker reads a batch, stalls on the lock, and is killed with SIGKILL
    first = start_worker(tmp_path, "doomed", CELERY_BROKER_URL=broker_url)
    try:
        wait_for(lambda: redis_client().xpending(redis_sales.SaleKeys(sale.pk).stream,
                                                             redis_sales.WRITER_GROUP)["pending"] > 0,
                 what="the first worker to hold a batch")  # fmt: skip
    finally:
        stop_shop_process(first, signal.SIGKILL)
        blocker.rollback()
        blocker.close()
    assert Order.objects.count() == 0

    # Then a new worker (with its beat: the sweep reclaims what the dead one held) writes them all
    with running_worker(
        tmp_path, "rescuer", beat=True, ORDER_WRITER_RECLAIM_IDLE_MS="500", CELERY_BROKER_URL=broker_url
    ):
        wait_for(lambda: resolved(rids) == 150, what="every reservation to be written")

    # Every accepted reservation has exactly one order: none lost, none doubled
    assert Order.objects.filter(reservation_id__in=rids).count() == 150
    assert not FailedReservation.objects.exists()
    assert not redis_sales.reservations_in_stream(sale.pk)
    report = check_invariants()
    assert report.ok, report.violations
    connection.close()


def test_reservation_ids_are_signed_for_their_sale_and_user():
    rid = reservation_id_new(sale_id=7, user_id=9, idempotency_key="k")

    from purchase.reservations import reservation_id_parse

    assert reservation_id_parse(rid).sale_id == 7
    assert reservation_id_parse(rid).user_id == 9
    assert reservation_id_parse(rid.replace("7-9-", "7-8-", 1)) is None
