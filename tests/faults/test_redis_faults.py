"""Redis stopped in the middle of a storm: a private server the test starts, kills and restarts."""

import contextlib
import signal
import threading
import time

import pytest
from django.db import connections

from accounts.models import User
from orders.invariants import check_invariants
from orders.writer import order_writer_drain
from scripts.devstack import PrivateRedis
from shop.services import flash_sale_reconcile
from tests.concurrency import run_together
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path / "redis", persistent=False)
    url = server.start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    settings.REDIS_URL = url
    settings.REDIS_BREAKER_RESET_SECONDS = 0.5
    yield server
    server.stop()


def test_redis_killed_during_a_storm_gives_fast_503s_and_then_recovers(private_redis, make_sale, brokered):
    # Given a live sale of 250 units and 300 shoppers, and a writer draining as they buy.
    # (At most 80 + 30 in flight are answered before the kill, so the sale cannot sell out
    # before Redis dies; a sold-out sale would rightly keep answering "sold out" from the gate.)
    sale = make_sale(quantity=250, limit=1)
    clients = [client_for(UserFactory()) for _ in range(300)]
    answers: list[tuple[int, float, dict]] = []
    lock = threading.Lock()
    writer_running = threading.Event()
    writer_running.set()

    def writer():
        while writer_running.is_set():
            # Redis is down part of the time; the writer keeps trying, as the sweep would.
            with contextlib.suppress(Exception):
                order_writer_drain(sale_id=sale.pk, consumer="writer")
            time.sleep(0.05)
        connections.close_all()

    drain_thread = threading.Thread(target=writer)
    drain_thread.start()

    # When 300 purchases arrive in 30 threads and Redis is killed after the first 80 answers
    killed_at = []

    def shopper(index: int):
        for client in clients[index::30]:
            started = time.monotonic()
            response = purchase(client, sale, key="storm")
            with lock:
                answers.append((response.status_code, time.monotonic() - started, response.json(), started))
                if len(answers) == 80:
                    private_redis.stop(signal.SIGKILL)
                    killed_at.append(time.monotonic())

    try:
        run_together(shopper, 30, timeout=120)
    finally:
        writer_running.clear()
        drain_thread.join()

    # Then every request was answered: accepted or refused before the kill, a 503 after it
    assert len(answers) == 300
    assert {status for status, *_ in answers} <= {202, 409, 503}
    after_kill = [(status, body) for status, _, body, started in answers if started > killed_at[0]]
    assert len(after_kill) >= 150
    assert {(status, body["code"]) for status, body in after_kill} == {(503, "unavailable")}
    # And none of them hung: the slowest stayed within a few socket timeouts
    assert max(seconds for _, seconds, *_ in answers) < 5

    # When Redis comes back empty and reconciliation runs
    private_redis.start()
    time.sleep(0.6)  # the breaker lets a probe through after REDIS_BREAKER_RESET_SECONDS
    flash_sale_reconcile(sale=sale)
    order_writer_drain(sale_id=sale.pk, consumer="writer")

    # Then every accepted reservation is confirmed or reported failed, never left pending
    accepted = [(index, body["reservation_id"]) for index, (status, _, body, _) in enumerate(answers) if status == 202]
    assert accepted
    outcomes = set()
    for _, rid in accepted:
        user_id = int(rid.split("-")[1])
        result = client_for(User.objects.get(pk=user_id)).get(f"/api/v1/purchases/{rid}/")
        outcomes.add(result.json()["status"])
    assert outcomes <= {"confirmed", "failed"}
    # And nothing is oversold, Redis agrees with the database, and the sale sells again
    report = check_invariants()
    assert report.ok, report.violations
    sale.refresh_from_db()
    assert sale.units_sold <= 250
    late = purchase(client_for(UserFactory()), sale, key="after")
    assert late.status_code in {202, 409}
