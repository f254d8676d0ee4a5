"""One hot sale split into three stock shards on a real Redis Cluster: admissions spread over the
three primaries, the sale sells out completely whichever shards its shoppers come to, the
per-user limit and idempotency stay exact, the writers of the shards write in parallel (each
shard's own database row), and reconciliation repairs what a mover or a failover lost."""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from redis.crc import key_slot

from core import redis as shop_redis
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.services import order_cancel
from orders.writer import order_writer_drain
from shop.models import FlashSale
from shop.services import flash_sale_reconcile
from tests.cluster.conftest import storm_through_a_writer
from tests.concurrency import storm
from tests.conftest import client_for, move_units, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SHARDS = 3


def shoppers_of(shard: int | None, count: int) -> list:
    """`count` new shoppers whose home is `shard` (any shard when None)."""
    found = []
    while len(found) < count:
        user = UserFactory()
        if shard is None or redis_sales.home_shard(user.pk, SHARDS) == shard:
            found.append(user)
    return found


def write_everything(sale: FlashSale) -> None:
    for shard in range(SHARDS):
        order_writer_drain(sale_id=sale.pk, consumer="test", shard=shard, shards=SHARDS)


def remaining_by_shard(sale: FlashSale) -> list[int]:
    return [state.remaining for state in redis_sales.sale_shard_states(sale.pk, SHARDS)]


def test_a_sale_of_three_shards_spreads_over_the_primaries_and_sells_out_exactly(
    on_cluster, make_sale, brokered, script_keys, tmp_path
):
    sale = make_sale(quantity=90, limit=1, shards=SHARDS)
    keys = redis_sales.SaleKeys.all_of(sale.pk, SHARDS)
    cluster = shop_redis.redis_client()
    assert len({cluster.get_node_from_key(shard.remaining).port for shard in keys}) == 3
    assert remaining_by_shard(sale) == [30, 30, 30]
    shoppers = shoppers_of(None, 200)
    answers = storm_through_a_writer(tmp_path, sale, shoppers, [(i % 200, f"attempt-{i}") for i in range(400)])
    accepted = [body["reservation_id"] for _, status, body in answers if status == 202]

    assert {status for _, status, _ in answers} <= {202, 409}
    assert {body["code"] for _, status, body in answers if status == 409} <= {"sold_out", "limit_exceeded"}
    assert len(accepted) == 90  # every unit of every shard, none twice
    assert not FailedReservation.objects.exists()
    assert max(Counter(Order.objects.filter(flash_sale=sale).values_list("user_id", flat=True)).values()) == 1
    assert remaining_by_shard(sale) == [0, 0, 0]
    assert [row.units_sold for row in sale.shards.order_by("index")] == [
        sum(1 for user_id in Order.objects.values_list("user_id", flat=True) if user_id % SHARDS == shard)
        for shard in range(SHARDS)
    ]
    report = check_invariants()
    assert report.ok, report.violations

    # A cancelled order's unit goes back to its shopper's shard, and sells again.
    order = Order.objects.filter(flash_sale=sale).first()
    order_cancel(order=order, actor=None, reason="changed mind")
    home = redis_sales.home_shard(order.user_id, SHARDS)
    assert remaining_by_shard(sale)[home] == 1
    assert purchase(client_for(shoppers_of(home, 1)[0]), sale, key="after-the-cancel").status_code == 202
    write_everything(sale)
    assert not flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk)).drifted
    report = check_invariants()
    assert report.ok, report.violations
    for script, calls in script_keys.items():
        for call in calls:
            assert len({key_slot(key.encode()) for key in call}) == 1, (script, call)


def test_no_unit_is_stranded_when_every_shopper_comes_to_one_shard(on_cluster, make_sale, script_keys):
    # Thirty units in three shards of ten, and only shard 0's shoppers: its ten run out, and
    # the rest must come to it from the other two, until the whole sale is sold.
    sale = make_sale(quantity=30, limit=2, shards=SHARDS)
    shoppers = shoppers_of(0, 25)
    clients = [client_for(user) for user in shoppers]
    attempts = [(i % 25, f"attempt-{i}") for i in range(75)]  # three keys each, a limit of two

    sent = storm(attempts, lambda attempt: purchase(clients[attempt[0]], sale, key=attempt[1]), threads=20)
    answers = [(attempt, response.status_code, response.json()) for attempt, response in sent]
    accepted = [(attempt, body["reservation_id"]) for attempt, status, body in answers if status == 202]

    assert len(accepted) == 30
    assert max(Counter(index for (index, _), _ in accepted).values()) <= 2  # the limit held across the moves
    assert {body["code"] for _, status, body in answers if status == 409} <= {"sold_out", "limit_exceeded"}
    assert remaining_by_shard(sale) == [0, 0, 0]
    assert sum(state.allotment for state in redis_sales.sale_shard_states(sale.pk, SHARDS)) == 30
    assert "shift_units" in script_keys
    # Shard 0's writer finds its database allotment (ten) short, and borrows the others' unsold.
    write_everything(sale)
    assert Order.objects.filter(flash_sale=sale).count() == 30
    assert not FailedReservation.objects.exists()
    assert [(row.allotment, row.units_sold) for row in sale.shards.order_by("index")] == [(30, 30), (0, 0), (0, 0)]
    # A repeat of an accepted request gets its first answer, from the shard that admitted it.
    (index, key), rid = accepted[-1]
    again = purchase(clients[index], sale, key=key)
    assert (again.status_code, again.json()["reservation_id"]) == (202, rid)
    report = check_invariants()
    assert report.ok, report.violations


def test_the_same_request_sent_at_once_is_one_reservation_in_a_sharded_sale(on_cluster, make_sale):
    sale = make_sale(quantity=9, limit=3, shards=SHARDS)
    client = client_for(UserFactory())

    sent = storm(list(range(12)), lambda _: purchase(client, sale, key="one-request"), threads=12)

    assert {response.status_code for _, response in sent} == {202}
    assert len({response.json()["reservation_id"] for _, response in sent}) == 1
    assert sum(remaining_by_shard(sale)) == 8
    write_everything(sale)
    assert Order.objects.filter(flash_sale=sale).count() == 1


def test_reconcile_gives_back_units_a_mover_lost_halfway(on_cluster, make_sale):
    sale = make_sale(quantity=30, limit=1, shards=SHARDS)
    # A mover took five units from shard 2 and died before giving them to anyone.
    assert move_units(sale, shard=2, units=-5) == -5
    report = check_invariants()
    assert [violation["invariant"] for violation in report.violations] == ["cache_allotments"]

    result = flash_sale_reconcile(sale=sale)

    assert result.drifted
    assert (result.remaining_before, result.remaining_expected) == (25, 30)
    assert remaining_by_shard(sale) == [15, 10, 5]
    report = check_invariants()
    assert report.ok, report.violations


def test_a_shard_lost_in_a_failover_is_rebuilt_with_what_the_others_do_not_hold(on_cluster, make_sale):
    sale = make_sale(quantity=30, limit=1, shards=SHARDS)
    for shard, count in [(0, 4), (1, 6), (2, 2)]:
        for user in shoppers_of(shard, count):
            assert purchase(client_for(user), sale, key="k").status_code == 202
    write_everything(sale)
    assert remaining_by_shard(sale) == [6, 4, 8]
    # Shard 1's primary lost every key of it (an unreplicated failover, or a restart).
    shard_keys = redis_sales.SaleKeys(sale.pk, 1, SHARDS)
    shop_redis.redis_client().delete(shard_keys.meta, shard_keys.remaining, shard_keys.buyers, shard_keys.admitted)

    assert flash_sale_reconcile(sale=sale) is None  # it rebuilt the shard

    assert remaining_by_shard(sale) == [6, 4, 8]
    report = check_invariants()
    assert report.ok, report.violations
    # And the sale still sells exactly its quantity.
    for user in shoppers_of(None, 25):
        purchase(client_for(user), sale, key="k")
    write_everything(sale)
    assert Order.objects.filter(flash_sale=sale).count() == 30
    assert sum(remaining_by_shard(sale)) == 0
    report = check_invariants()
    assert report.ok, report.violations


def test_a_sale_in_waves_over_three_primaries_opens_each_wave_by_redis_time_and_moves_only_released_units(
    on_cluster, make_sale, script_keys
):
    now = timezone.now()
    wave = (now + timedelta(seconds=6)).replace(microsecond=0)
    sale = make_sale(quantity=18, limit=1, shards=SHARDS, waves=[(now - timedelta(seconds=30), 6), (wave, 12)])
    clients = [client_for(user) for user in shoppers_of(0, 30)]  # all at home in shard 0

    before = storm(list(range(15)), lambda i: purchase(clients[i], sale, key="k"), threads=10)

    assert sum(response.status_code == 202 for _, response in before) == 6  # 2 + 2 + 2, borrowed
    assert remaining_by_shard(sale) == [4, 4, 4]  # the second wave's units, on their primaries
    while time.time() < wave.timestamp() + 0.2:
        time.sleep(0.05)
    after = storm(list(range(15, 30)), lambda i: purchase(clients[i], sale, key="k"), threads=10)

    assert sum(response.status_code == 202 for _, response in after) == 12
    assert remaining_by_shard(sale) == [0, 0, 0]
    assert "shift_units" in script_keys
    write_everything(sale)
    assert Order.objects.filter(flash_sale=sale).count() == 18
    report = check_invariants()
    assert report.ok, report.violations
