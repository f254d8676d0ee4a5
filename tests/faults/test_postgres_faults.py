"""PostgreSQL restarted in the middle of a storm: a private server the test starts, stops and
starts again, under a real web server process and a real Celery worker."""

import json
import os
import subprocess
import sys
import threading

import psycopg2
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from scripts.devstack import PrivatePostgres
from tests.concurrency import run_together
from tests.processes import ROOT, http, running_web_server, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SEED = """
import json
from datetime import timedelta
from decimal import Decimal
from django.utils import timezone
from accounts.models import User
from inventory.services import stock_receive, stock_get_or_create
from shop.models import Product, SKU
from shop.services import flash_sale_create, flash_sale_preheat
users = User.objects.bulk_create([User(username=f"fault{i}", password="!") for i in range(200)])
sku = SKU.objects.create(product=Product.objects.create(name="Fault", slug="fault"), code="FAULT-1", price=Decimal("5"))
stock = stock_receive(stock=stock_get_or_create(sku=sku), quantity=300, actor=None, reason="opening")
now = timezone.now()
sale = flash_sale_create(sku=sku, price=Decimal("1"), quantity=150, starts_at=now - timedelta(minutes=1),
                         ends_at=now + timedelta(hours=1), per_user_limit=1, actor=None)
flash_sale_preheat(sale=sale)
print(json.dumps({"sale": sale.pk, "users": [u.pk for u in users]}))
"""


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def private_postgres(tmp_path, redis_client):
    server = PrivatePostgres(tmp_path / "pg", database="shop_fault")
    url = server.start()
    migrated = manage(url, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    yield server
    server.stop()


def test_postgres_restarted_during_a_storm_loses_no_accepted_purchase(private_postgres, tmp_path):
    # Given a live sale of 150 units in a database of its own, a web server and a writer on it
    seeded = manage(private_postgres.url, "shell", "-c", SEED)
    assert seeded.returncode == 0, seeded.stderr
    ids = json.loads(seeded.stdout.strip().splitlines()[-1])
    env = {"DATABASE_URL": private_postgres.url, "ORDER_WRITER_RECLAIM_IDLE_MS": "1000"}

    with running_web_server(tmp_path, "web", **env) as web, running_worker(tmp_path, "writer", beat=True, **env):
        answers: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def buy(user_id: int) -> None:
            token = AccessToken()
            token["user_id"] = user_id
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "storm",
                       "Content-Type": "application/json"}  # fmt: skip
            status, _, body = http("POST", f"{web}/api/v1/flash-sales/{ids['sale']}/purchase/", headers,
                                   b'{"quantity": 1}')  # fmt: skip
            with lock:
                answers.append((status, json.loads(body)))
                if len(answers) == 50:
                    private_postgres.stop()  # PostgreSQL goes away mid-storm
                elif len(answers) == 150:
                    private_postgres.start()  # and comes back on the same port

        # When 200 shoppers buy in 20 threads while PostgreSQL stops and starts again
        run_together(lambda i: [buy(user) for user in ids["users"][i::20]], 20, timeout=300)

        # Then admission carried on into Redis throughout
        statuses = [status for status, _ in answers]
        assert len(answers) == 200
        assert statuses.count(202) == 150, answers
        assert statuses.count(409) == 50
        accepted = [body["reservation_id"] for status, body in answers if status == 202]

        # And once PostgreSQL is back, every accepted reservation becomes exactly one order
        def written() -> int:
            with psycopg2.connect(private_postgres.url) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM orders_order WHERE reservation_id = ANY(%s)", [accepted])
                return cursor.fetchone()[0]

        wait_for(lambda: written() == 150, timeout=120, what="every accepted purchase to become an order")

    with psycopg2.connect(private_postgres.url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT reservation_id) FROM orders_order")
        assert cursor.fetchone() == (150, 150)
    report = manage(private_postgres.url, "check_invariants")
    assert report.returncode == 0, report.stdout
