"""A Redis Cluster primary killed in the middle of a storm while its replica is promoted:
purchases are refused as unavailable for a moment, then sell again; once the writer and
reconciliation ran, every accepted reservation is an order or says why not (`lost` when the
failover lost it), none is confirmed twice, and the invariants hold."""

import itertools
import threading
import time
from collections import Counter

import pytest

from core import redis as shop_redis
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from purchase.results import purchase_result
from shop.models import FlashSale
from shop.services import flash_sale_reconcile
from tests.concurrency import run_together
from tests.conftest import client_for, purchase
from tests.factories import UserFactory
from tests.processes import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("shards", [1, 3])
def test_a_primary_killed_mid_storm_fails_over_and_no_accepted_purchase_is_lost_silently(
    on_cluster, make_sale, brokered, settings, tmp_path, shards
):
    # With three stock shards, the killed primary holds one of them: its shoppers get 503s (or
    # so do those whose shard borrows from it) while the other shards sell on.
    cluster = on_cluster
    sale = make_sale(quantity=150, limit=1, shards=shards)
    shoppers = [UserFactory() for _ in range(300)]
    clients = [client_for(user) for user in shoppers]
    victim = shop_redis.redis_client().get_node_from_key(redis_sales.SaleKeys(sale.pk, 0, shards).remaining).port
    attempts = itertools.count()
    answers: list[tuple[float, int, int, dict]] = []  # (when, shopper, status, body)
    lock = threading.Lock()
    killed, recovered, done = threading.Event(), threading.Event(), threading.Event()

    def shopper(_):
        while not done.is_set():
            with lock:
                n = next(attempts)
            index = n % len(shoppers)
            response = purchase(clients[index], sale, key=f"attempt-{n}")
            now = time.monotonic()
            with lock:
                answers.append((now, index, response.status_code, response.json()))
                if len(answers) >= 60:
                    killed.set()
            # Past the breaker's pause the purchases reach the promoted replica: buy on a while.
            if recovered.is_set() and now > recovered_at[0] + settings.REDIS_BREAKER_RESET_SECONDS + 3:
                done.set()

    recovered_at = [0.0]

    def failover():
        killed.wait()
        cluster.kill(victim)
        wait_for(cluster.serving, timeout=60, what="a replica to be promoted")
        recovered_at[0] = time.monotonic()
        recovered.set()

    # With its beat, as production runs it: the sweep takes over what a drain lost in the failover.
    # Naming every node, as production should: a worker's process that first talks to the cluster
    # after the kill (a pool child that had no task yet) starts from a node that is up.
    started = {"REDIS_CLUSTER": "1", "REDIS_URL": cluster.every_node_url, "ORDER_WRITER_RECLAIM_IDLE_MS": "500"}
    with running_worker(tmp_path, beat=True, **started) as worker:
        watcher = threading.Thread(target=failover)
        watcher.start()
        run_together(shopper, 12, timeout=300)
        watcher.join()
        accepted = {body["reservation_id"]: shoppers[index] for _, index, status, body in answers if status == 202}

        def settled() -> bool:
            return all(
                purchase_result(reservation_id=rid, user=user).status != "pending" for rid, user in accepted.items()
            )

        wait_for(settled, timeout=120, what="every accepted reservation to be written or known lost")
        assert worker.poll() is None
    flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk))
    cluster.start(victim)
    wait_for(cluster.healthy, timeout=60, what="the killed node to rejoin as a replica")

    statuses = Counter(status for _, _, status, _ in answers)
    assert set(statuses) <= {202, 409, 503}, statuses
    assert statuses[503] > 0  # refused while the slot had no primary
    assert any(status == 202 and when > recovered_at[0] for when, _, status, _ in answers)  # sold again
    results = Counter(
        (result.status, result.reason)
        for result in (purchase_result(reservation_id=rid, user=user) for rid, user in accepted.items())
    )
    assert set(results) <= {("confirmed", None), ("failed", "lost"), ("failed", "sold_out")}, results
    orders = Order.objects.filter(flash_sale=sale)
    assert orders.count() == results[("confirmed", None)] <= sale.quantity
    assert len(set(orders.values_list("reservation_id", flat=True))) == orders.count()
    assert max(Counter(orders.values_list("user_id", flat=True)).values()) == 1
    assert FailedReservation.objects.filter(reason="lost").count() == results[("failed", "lost")]
    report = check_invariants()
    assert report.ok, report.violations
    print(f"\nfailover: {dict(statuses)} answers; results {dict(results)}")


def test_reservations_the_failover_lost_report_lost_and_reconcile_repairs_the_counters(
    on_cluster, make_sale, brokered, tmp_path
):
    cluster = on_cluster
    sale = make_sale(quantity=20, limit=1)
    shoppers = [UserFactory() for _ in range(7)]
    primary = shop_redis.redis_client().get_node_from_key(redis_sales.SaleKeys(sale.pk).remaining).port
    node = cluster.node(primary)
    kept = [purchase(client_for(user), sale, key="k").json()["reservation_id"] for user in shoppers[:3]]
    assert node.execute_command("WAIT", 1, 5000) == 1  # these three reached the replica
    # Asynchronous replication's window, held open: the replica is cut off and may not resync,
    # so what the primary accepts now dies with it.
    node.execute_command("ACL", "SETUSER", "default", "-psync", "-sync", "-replconf")
    node.execute_command("CLIENT", "KILL", "TYPE", "replica")
    doomed = [purchase(client_for(user), sale, key="k").json()["reservation_id"] for user in shoppers[3:]]
    cluster.kill(primary)
    wait_for(cluster.serving, timeout=60, what="the replica to be promoted")

    # Started now, it names a node that is up: a process finds the others from the one it is given.
    started = {"REDIS_CLUSTER": "1", "REDIS_URL": cluster.url, "ORDER_WRITER_RECLAIM_IDLE_MS": "500"}
    with running_worker(tmp_path, beat=True, **started):
        wait_for(lambda: Order.objects.filter(reservation_id__in=kept).count() == 3, timeout=60, what="the kept orders")
    results = {
        rid: purchase_result(reservation_id=rid, user=user) for rid, user in zip(kept + doomed, shoppers, strict=True)
    }
    flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk))
    cluster.start(primary)
    wait_for(cluster.healthy, timeout=60, what="the killed node to rejoin as a replica")

    assert [results[rid].status for rid in kept] == ["confirmed"] * 3
    assert [(results[rid].status, results[rid].reason) for rid in doomed] == [("failed", "lost")] * 4
    assert not Order.objects.filter(reservation_id__in=doomed).exists()
    assert redis_sales.sale_remaining(sale.pk) == 17
    # A lost purchase asked again later stays lost: the answer a shopper saw does not change.
    assert purchase_result(reservation_id=doomed[0], user=shoppers[3]).reason == "lost"
    report = check_invariants()
    assert report.ok, report.violations
