"""The whole shop as `make run` brings it up (web, worker, beat under scripts/devstack.py),
with the Redis that is both its sale layer and its Celery broker killed and brought back."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from orders.invariants import check_invariants
from orders.models import Order
from scripts.devstack import ROOT, PrivateRedis, free_port
from shop.services import flash_sale_reconcile
from tests.factories import UserFactory
from tests.processes import database_url_for_processes, http, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_redis(tmp_path, settings):
    """The shop's only Redis; every write it acknowledges is on disk before it answers."""
    server = PrivateRedis(tmp_path / "redis", persistent=True, fsync="always")
    url = server.start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    yield server
    server.stop()


@pytest.fixture
def make_run(broker_redis, tmp_path):
    """`scripts/devstack.py run` on the test database and the Redis above; yields its base URL
    and its folder of pid files."""
    port = free_port()
    run_dir = tmp_path / "run"
    log = open(tmp_path / "devstack.log", "ab")  # noqa: SIM115 - the supervisor writes to it until stopped
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "REDIS_URL": broker_redis.url,
        "CELERY_BROKER_URL": broker_redis.url,
        "SHOP_RUN_DIR": str(run_dir),
        "PORT": str(port),
        "SEED_DEMO": "0",
        "WEB_CONCURRENCY": "2",
        "RATE_LIMIT_IP_RATE": "0",
        "REDIS_BREAKER_RESET_SECONDS": "0.5",
        "ORDER_WRITER_RECLAIM_IDLE_MS": "1000",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    supervisor = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "devstack.py"), "run"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Up means what make run says: until then it is still starting and a death is fatal to it.
        up = lambda: "The shop is up." in (tmp_path / "devstack.log").read_text()  # noqa: E731
        wait_for(lambda: up() or supervisor.poll() is not None, timeout=120, what="make run to come up")
        assert _answers(base)
        assert supervisor.poll() is None, (tmp_path / "devstack.log").read_text()
        yield base, run_dir / "pids"
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(60)


def _answers(base: str) -> bool:
    try:
        return http("GET", f"{base}/livez")[0] == 200
    except OSError:
        return False


def test_a_redis_blip_under_make_run_keeps_the_web_up_and_loses_no_accepted_purchase(
    broker_redis, make_run, make_sale, tmp_path
):
    base, pids = make_run
    sale = make_sale(quantity=500, limit=1)
    users = [UserFactory() for _ in range(240)]
    web_pid = (pids / "web.pid").read_text()

    # The web is watched throughout: every probe must get an answer
    watching, probes = threading.Event(), []
    watching.set()

    def watch():
        while watching.is_set():
            try:
                probes.append(http("GET", f"{base}/livez")[0])
            except OSError as error:
                probes.append(repr(error))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()

    # When shoppers buy in 4 threads, and Redis is SIGKILLed after 80 answers and restarted 5 s later
    answers: list[tuple[object, int, dict]] = []
    lock = threading.Lock()
    killed = threading.Event()

    def buy(user) -> None:
        headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}", "Idempotency-Key": f"blip-{user.pk}",
                   "Content-Type": "application/json"}  # fmt: skip
        status, _, body = http("POST", f"{base}/api/v1/flash-sales/{sale.pk}/purchase/", headers, b'{"quantity": 1}')
        with lock:
            answers.append((user, status, json.loads(body)))
            if len(answers) == 80:
                broker_redis.stop(signal.SIGKILL)
                killed.set()

    def shopper(index: int) -> None:
        for user in users[index::4]:
            buy(user)
            time.sleep(0.02)

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    assert killed.wait(120)
    time.sleep(5)
    broker_redis.start()
    for thread in threads:
        thread.join(300)

    # Then the web answered every probe, without being restarted; refusals were 503s, not errors
    assert len(answers) == len(users)
    assert {status for _, status, _ in answers} <= {202, 503}, answers
    assert 80 <= [status for _, status, _ in answers].count(202) < len(users)
    assert (pids / "web.pid").read_text() == web_pid

    # And a shopper answered 503 who retries with the same key gets the reservation the
    # admission made if Redis had made one before it died (the answer was lost, not the unit)
    retried = [user for user, status, _ in answers if status == 503]
    answers = [answer for answer in answers if answer[1] == 202]
    for user in retried:
        buy(user)
    assert {status for _, status, _ in answers} == {202}, answers

    # And every accepted purchase becomes exactly one order once the worker is back
    accepted = {body["reservation_id"] for _, _, body in answers}
    wait_for(
        lambda: Order.objects.filter(reservation_id__in=accepted).count() == len(accepted),
        timeout=120,
        what="every accepted purchase to become an order",
    )
    watching.clear()
    watcher.join()
    assert all(probe == 200 for probe in probes), [p for p in probes if p != 200][:5]
    assert set(Order.objects.filter(flash_sale=sale).values_list("reservation_id", flat=True)) == accepted
    flash_sale_reconcile(sale=sale)
    report = check_invariants()
    assert report.ok, report.violations


def test_a_process_that_dies_under_make_run_is_restarted_and_the_others_carry_on(make_run, make_sale):
    base, pids = make_run
    sale = make_sale(quantity=5)
    web_pid, worker_pid = (pids / "web.pid").read_text(), (pids / "worker.pid").read_text()

    # When the worker dies
    os.kill(int(worker_pid), signal.SIGKILL)

    # Then the supervisor starts a new one, and the web never stopped
    wait_for(lambda: (pids / "worker.pid").read_text() != worker_pid, timeout=60, what="a new worker")
    assert (pids / "web.pid").read_text() == web_pid
    assert http("GET", f"{base}/livez")[0] == 200
    # And the new worker writes orders
    user = UserFactory()
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}", "Idempotency-Key": "after-restart",
               "Content-Type": "application/json"}  # fmt: skip
    status, _, body = http("POST", f"{base}/api/v1/flash-sales/{sale.pk}/purchase/", headers, b'{"quantity": 1}')
    assert status == 202, body
    wait_for(lambda: Order.objects.filter(user=user).exists(), timeout=60, what="the order")
