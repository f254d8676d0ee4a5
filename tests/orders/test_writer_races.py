"""The order writer and the Redis counters under interleavings forced at the exact point.

Each test holds one step (a hook around the real call) while a competitor runs, then checks
the invariants of design.md, not only the answers.
"""

import pytest
import redis
from django.db import connections

from core.redis import redis_client
from inventory import redis_sales
from orders import tasks
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.services import order_cancel
from orders.writer import order_write_batch, order_writer_drain
from shop.services import flash_sale_reconcile
from tests.concurrency import start_thread, wait_until_blocked_or_done
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def drain(sale) -> None:
    assert order_writer_drain(sale_id=sale.pk, consumer="test")


def result(client, reservation_id: str) -> dict:
    return client.get(f"/api/v1/purchases/{reservation_id}/").json()


def assert_invariants() -> None:
    report = check_invariants()
    assert report.ok, report.violations


def test_units_the_database_refused_as_sold_out_do_not_go_back_to_redis(make_sale, brokered, settings, monkeypatch):
    # Given a sale of 2 whose unit was sold once through the database path while Redis could not
    # be told (Redis still says 2)
    sale = make_sale(quantity=2, limit=1)
    settings.PURCHASE_ADMISSION = "database"

    def away(**_):
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(redis_sales, "sale_taken_by_database", away)
    assert purchase(client_for(UserFactory()), sale, key="db").status_code == 202
    monkeypatch.undo()
    settings.PURCHASE_ADMISSION = "redis"
    assert redis_sales.sale_remaining(sale.pk) == 2

    # When Redis admits two more and the writer writes them: one fits, one is sold out
    admitted = [client_for(UserFactory()) for _ in range(2)]
    rids = [purchase(client, sale, key="k").json()["reservation_id"] for client in admitted]
    drain(sale)
    assert sorted(result(c, rid)["status"] for c, rid in zip(admitted, rids, strict=True)) == ["confirmed", "failed"]

    # Then the surplus is gone: later shoppers are refused at once instead of accepted then failed
    later = [purchase(client_for(UserFactory()), sale, key="k") for _ in range(5)]
    drain(sale)
    assert [(r.status_code, r.json().get("code")) for r in later] == [(409, "sold_out")] * 5
    assert redis_sales.sale_remaining(sale.pk) == 0
    assert_invariants()


def test_a_reconcile_between_a_cancel_and_its_release_does_not_count_the_units_twice(make_sale, brokered, monkeypatch):
    # Given one written order of a sale of 5
    sale = make_sale(quantity=5, limit=1)
    purchase(client_for(UserFactory()), sale, key="k")
    drain(sale)
    order = Order.objects.get()
    real_release = redis_sales.sale_release_units
    reconciler = []

    def release_after_a_reconcile(**kwargs):
        # A reconcile starts right where the units are about to go back to Redis
        thread, _ = start_thread(lambda: flash_sale_reconcile(sale=sale))
        wait_until_blocked_or_done(thread)
        reconciler.append(thread)
        return real_release(**kwargs)

    monkeypatch.setattr(redis_sales, "sale_release_units", release_after_a_reconcile)

    # When the order is cancelled
    order_cancel(order=order, actor=None, reason="changed mind")
    reconciler[0].join(30)

    # Then Redis offers the 5 units, not 6
    assert redis_sales.sale_remaining(sale.pk) == 5
    assert_invariants()


def test_a_reconcile_between_the_writers_commit_and_its_release_does_not_count_the_units_twice(
    make_sale, brokered, monkeypatch
):
    # Given a shopper whose tally Redis got wrong, so the database refuses their second unit
    sale = make_sale(quantity=3, limit=1)
    buyer = UserFactory()
    client = client_for(buyer)
    purchase(client, sale, key="k1")
    drain(sale)
    redis_sales.sale_release_units(sale_id=sale.pk, user_id=buyer.pk, quantity=1)
    redis_client().incrby(redis_sales.SaleKeys(sale.pk).remaining, -1)
    purchase(client, sale, key="k2")

    # When a reconcile runs in full right after the writer commits, before its next Redis step
    hooked = []

    def reconcile_first(real):
        def call(*args, **kwargs):
            if not hooked:
                hooked.append(True)
                thread, outcome = start_thread(lambda: flash_sale_reconcile(sale=sale))
                thread.join(30)
                assert not isinstance(outcome[0], Exception), outcome
            return real(*args, **kwargs)

        return call

    for name in ("sale_release_units", "reservations_done"):
        monkeypatch.setattr(redis_sales, name, reconcile_first(getattr(redis_sales, name)))
    drain(sale)

    # Then the refused unit is back on offer once, not twice
    assert hooked
    assert FailedReservation.objects.get().reason == FailedReservation.Reason.LIMIT_EXCEEDED
    assert redis_sales.sale_remaining(sale.pk) == 2
    assert_invariants()


def test_a_replay_after_the_key_expired_takes_nothing_again(make_sale, brokered, redis_client):
    # Given a written purchase whose Idempotency-Key Redis has since forgotten
    sale = make_sale(quantity=5, limit=2)
    buyer = UserFactory()
    client = client_for(buyer)
    first = purchase(client, sale, key="K").json()
    drain(sale)
    redis_client.delete(redis_sales.SaleKeys(sale.pk).idempotency(buyer.pk, "K"))

    # When the shopper's client replays it
    again = purchase(client, sale, key="K")
    drain(sale)

    # Then it is the same reservation, and nothing more is taken
    assert (again.status_code, again.json()) == (202, first)
    assert redis_sales.sale_remaining(sale.pk) == 4
    # And the shopper's legitimate second unit is still theirs to buy
    assert purchase(client, sale, key="K2").status_code == 202
    drain(sale)
    assert Order.objects.filter(user=buyer).count() == 2
    assert_invariants()


def test_a_replay_while_the_reservation_waits_in_the_stream_makes_one_order(make_sale, brokered, redis_client):
    # Given a reservation still waiting for the writer, whose key Redis evicted
    sale = make_sale(quantity=5, limit=2)
    buyer = UserFactory()
    client = client_for(buyer)
    first = purchase(client, sale, key="K").json()
    redis_client.delete(redis_sales.SaleKeys(sale.pk).idempotency(buyer.pk, "K"))

    # When it is replayed before the writer runs
    again = purchase(client, sale, key="K")
    drain(sale)

    # Then one reservation, one order, one unit taken
    assert again.json() == first
    assert Order.objects.count() == 1
    assert redis_sales.sale_remaining(sale.pk) == 4
    assert_invariants()


def test_a_reservation_twice_in_one_batch_does_not_stop_the_sweep(make_sale, brokered, redis_client):
    # Given two sales; the first's stream holds the same reservation twice (left by an older
    # version of the shop, or written by hand), and the second has a purchase waiting
    first_sale, second_sale = make_sale(quantity=5, limit=2), make_sale(quantity=5, limit=2)
    buyer = UserFactory()
    client = client_for(buyer)
    rid = purchase(client, first_sale, key="K").json()["reservation_id"]
    keys = redis_sales.SaleKeys(first_sale.pk)
    redis_client.xadd(keys.stream, {"rid": rid, "user": buyer.pk, "quantity": 1})
    redis_client.decr(keys.remaining)
    redis_client.hincrby(keys.buyers, buyer.pk, 1)
    waiting = purchase(client_for(UserFactory()), second_sale, key="K").json()["reservation_id"]

    # When the sweep runs
    tasks.order_writer_sweep()

    # Then both sales are written: one order for the doubled reservation, its extra unit back
    assert Order.objects.filter(reservation_id=rid).count() == 1
    assert Order.objects.filter(reservation_id=waiting).exists()
    assert redis_sales.sale_remaining(first_sale.pk) == 4
    assert_invariants()


def test_a_reservation_reported_lost_stays_lost_when_a_writer_had_already_read_it(make_sale, brokered, redis_client):
    # Given a writer that has read a reservation and not yet committed it
    sale = make_sale(quantity=5)
    client = client_for(UserFactory())
    rid = purchase(client, sale, key="K").json()["reservation_id"]
    entries = redis_sales.reservations_read(sale_id=sale.pk, consumer="slow", count=10)
    assert [entry.reservation_id for entry in entries] == [rid]

    # When Redis loses everything and the shopper is told their purchase was lost
    redis_client.flushdb()
    assert result(client, rid) == {"reservation_id": rid, "status": "failed", "order_id": None, "reason": "lost"}

    # Then the slow writer's commit does not turn that answer into a confirmation
    order_write_batch(sale_id=sale.pk, entries=entries)
    assert result(client, rid)["status"] == "failed"
    assert not Order.objects.exists()
    assert_invariants()


@pytest.mark.parametrize("fallback", [False, True])
def test_a_timeout_right_after_the_admission_script_makes_exactly_one_order(
    make_sale, brokered, monkeypatch, settings, fallback
):
    # Given Redis that runs the admission script and then times out before the answer arrives
    settings.PURCHASE_DATABASE_FALLBACK = fallback
    sale = make_sale(quantity=5, limit=3)
    client = client_for(UserFactory())
    real_admit = redis_sales.reservation_admit
    timeouts = []

    def admit_then_time_out(**kwargs):
        admission = real_admit(**kwargs)
        if not timeouts:
            timeouts.append(admission)
            raise redis.TimeoutError("Timeout reading from socket")
        return admission

    monkeypatch.setattr(redis_sales, "reservation_admit", admit_then_time_out)

    # When the shopper's first attempt times out and they retry with the same key
    first = purchase(client, sale, key="K")
    retry = purchase(client, sale, key="K")
    drain(sale)

    # Then the retry gets the reservation the script made, and exactly one order results
    assert first.status_code == (202 if fallback else 503)
    assert (retry.status_code, retry.json()["reservation_id"]) == (202, timeouts[0].reservation_id)
    assert Order.objects.count() == 1
    assert redis_sales.sale_remaining(sale.pk) == 4
    connections.close_all()
    assert_invariants()


def test_the_same_key_on_the_fallback_while_redis_holds_it_leaves_the_counters_true(make_sale, brokered, settings):
    # Given a reservation for 1 unit admitted by Redis and still waiting for the writer
    sale = make_sale(quantity=10, limit=3)
    buyer = UserFactory()
    client = client_for(buyer)
    assert purchase(client, sale, key="K").status_code == 202

    # When Redis becomes unreachable and the same key comes with 3 units to the fallback
    healthy = settings.CACHES["default"]
    settings.PURCHASE_DATABASE_FALLBACK = True
    settings.CACHES = {"default": {**healthy, "LOCATION": "redis://127.0.0.1:1/0"}}
    purchase(client, sale, key="K", quantity=3)
    settings.CACHES = {"default": healthy}
    drain(sale)

    # Then one order exists for the key, and Redis gives back the unit it took for it
    order = Order.objects.get()
    assert redis_sales.sale_remaining(sale.pk) == 10 - order.quantity
    assert_invariants()
