"""The sale layer on a real Redis Cluster (REDIS_CLUSTER=1): the whole purchase funnel in a
threaded storm with a real writer process, every script on keys of one slot, the limiter, the
idempotency store and the cache."""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from redis.crc import key_slot

from core import redis as shop_redis
from core.breaker import redis_breaker
from core.redis import PROJECT_ROOT as ROOT
from inventory import redis_sales
from inventory.redis_sales.gate import SaleGate, sale_gate_reopen
from limits.buckets import Limit, shared_take
from orders.blocks import purchase_blocks_publish
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.services import order_cancel
from orders.writer import order_writer_drain
from scripts.devstack import free_port
from shop.models import FlashSale
from shop.services import flash_sale_edit, flash_sale_reconcile
from tests.cluster.conftest import storm_through_a_writer
from tests.conftest import client_for, purchase
from tests.factories import UserFactory
from tests.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_storm_on_the_cluster_sells_exactly_the_quantity_with_every_script_on_one_slot(
    on_cluster, make_sale, brokered, script_keys, tmp_path, settings
):
    sale = make_sale(quantity=60, limit=1)
    shoppers = [UserFactory() for _ in range(150)]
    clients = [client_for(user) for user in shoppers]
    answers = storm_through_a_writer(tmp_path, sale, shoppers, [(i % 150, f"attempt-{i}") for i in range(300)])
    accepted = [body["reservation_id"] for _, status, body in answers if status == 202]

    assert len(answers) == 300
    assert {status for _, status, _ in answers} <= {202, 409}
    assert {body["code"] for _, status, body in answers if status == 409} <= {"sold_out", "limit_exceeded"}
    assert len(accepted) == 60
    assert not FailedReservation.objects.exists()
    assert max(Counter(Order.objects.filter(flash_sale=sale).values_list("user_id", flat=True)).values()) == 1
    assert redis_sales.sale_remaining(sale.pk) == 0
    assert not redis_sales.reservations_in_stream(sale.pk)
    report = check_invariants()
    assert report.ok, report.violations

    # The rest of a sale's life on the cluster runs every other script of the shop: a cancel
    # gives a unit back, an edit lets a shopper buy it, a writer in this process writes it, a
    # reconcile, a job's lock held, extended and released, the limiter's shared bucket.
    order_cancel(order=Order.objects.filter(flash_sale=sale).first(), actor=None, reason="changed mind")
    sale.refresh_from_db()
    flash_sale_edit(sale=sale, actor=None, version=sale.version, per_user_limit=2)
    assert purchase(clients[0], sale, key="after-the-edit").status_code == 202
    order_writer_drain(sale_id=sale.pk, consumer="test")
    assert not flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk)).drifted
    with redis_sales.sale_lock(sale.pk, "test") as lock:
        assert lock.extend()
    assert shared_take([Limit("write:user:1", rate=1.0, burst=1)]).allowed
    # A purchase of the database-only path, which Redis counts as it goes; the blocks published.
    settings.PURCHASE_ADMISSION = "database"
    assert purchase(clients[2], make_sale(quantity=2), key="by-the-database").status_code == 202
    settings.PURCHASE_ADMISSION = "redis"
    purchase_blocks_publish()
    # A waiting room's line, in a sale of three stock shards: its keys in the first shard's slot.
    queued = make_sale(quantity=3, shards=3, starts_in=-1, waiting_room_opens_at=timezone.now() - timedelta(minutes=1))
    place = clients[1].post(f"/api/v1/flash-sales/{queued.pk}/queue/").json()
    assert place["position"] == 1
    ticket = {"HTTP_QUEUE_TICKET": place["ticket"], "HTTP_IDEMPOTENCY_KEY": "queued"}
    bought = clients[1].post(f"/api/v1/flash-sales/{queued.pk}/purchase/", {"quantity": 1}, format="json", **ticket)
    assert bought.status_code == 202
    report = check_invariants()
    assert report.ok, report.violations
    # Every script got keys of one slot in every call (a cluster refuses others), and every
    # script of the shop was called (gcra.lua, waves.lua and answered.lua are included by others,
    # never run alone; shift_units.lua moves units between the shards of a sale of several:
    # test_cluster_shards).
    folders = ("inventory/lua", "limits/lua", "orders/lua")
    scripts = {path.stem for folder in folders for path in (ROOT / folder).glob("*.lua")}
    assert set(script_keys) == scripts - {"gcra", "waves", "answered", "shift_units"}
    for script, calls in script_keys.items():
        for keys in calls:
            assert len({key_slot(key.encode()) for key in keys}) == 1, (script, keys)


def test_the_writers_sweep_finds_streams_on_every_primary(on_cluster, make_sale):
    sales = [make_sale(quantity=3) for _ in range(12)]
    primaries = Counter(
        shop_redis.redis_client().get_node_from_key(redis_sales.SaleKeys(sale.pk).stream).port for sale in sales
    )
    for sale in sales:
        purchase(client_for(UserFactory()), sale, key="k")

    assert len(primaries) == 3  # the sales' streams live on all three primaries
    assert sorted(keys.sale_id for keys in redis_sales.sales_with_streams()) == sorted(sale.pk for sale in sales)


def test_a_process_starts_from_any_node_of_several_that_is_up(on_cluster, settings):
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = f"{nothing_there},{on_cluster.url}"

    assert shop_redis.redis_client().ping()
    assert len(shop_redis.redis_client().get_primaries()) == 3


def test_a_process_that_cannot_reach_the_cluster_answers_503_not_500(on_cluster, settings, make_sale):
    sale = make_sale(quantity=5)
    client = client_for(UserFactory())
    # A process whose only named node is down (redis-py's "cannot be connected" is no RedisError)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = purchase(client, sale, key="k")

    assert (response.status_code, response.json()["code"]) == (503, "unavailable")
    assert client.get(f"/api/v1/flash-sales/{sale.pk}/").status_code == 200  # the catalog reads on
    # Named again with a node that is up, the same process sells.
    settings.REDIS_URL = f"{settings.REDIS_URL},{on_cluster.url}"
    redis_breaker.reset()
    assert purchase(client, sale, key="k").status_code == 202


def test_the_limiter_idempotency_store_and_cache_work_on_the_cluster(on_cluster, make_sale):
    # A request's buckets live in different slots: each is taken on its own, none is exceeded.
    user_limit, ip_limit = Limit("write:user:7", rate=1.0, burst=3), Limit("write:ip:10.0.0.1", rate=1.0, burst=2)
    assert key_slot(b"rl:write:user:7") != key_slot(b"rl:write:ip:10.0.0.1")
    decisions = [shared_take([user_limit, ip_limit]) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].limit == ip_limit

    cache.set_many({"a": 1, "b": 2, "c": 3}, 30)
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3}
    assert cache.add("a", 9) is False and cache.get("a") == 1

    sale = make_sale(quantity=5, limit=2)
    client = client_for(UserFactory())
    first, again = purchase(client, sale, key="same"), purchase(client, sale, key="same")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["reservation_id"] == again.json()["reservation_id"]
    assert redis_sales.sale_remaining(sale.pk) == 4


def test_a_reopen_message_reaches_another_process_gate_through_the_cluster(on_cluster, settings):
    settings.SALE_GATE_SECONDS = 60  # the flag would not expire during the test: only the message clears it
    elsewhere = SaleGate()  # another process's gate, listening on the cluster
    elsewhere.close(7, "sold_out")
    assert elsewhere.refusal(7) == "sold_out"

    def reopened() -> bool:
        sale_gate_reopen(7)  # published until the gate hears it: the cluster's bus carries it
        time.sleep(0.2)
        return elsewhere.refusal(7) is None

    wait_for(reopened, timeout=10, what="the reopen message through the cluster")
