"""A sale of several stock shards on one Redis: moving units between shards while something
else holds the move lock, and the writers' allotments in PostgreSQL following Redis's."""

import pytest

from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.writer import order_writer_drain
from tests.conftest import client_for, move_units, purchase
from tests.sale_engine import lose_shard, shopper_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dry_shard_whose_units_cannot_move_yet_answers_503_not_sold_out(make_sale, brokered):
    # Given a sale of two shards whose shard 0 is empty while shard 1 has units
    sale = make_sale(quantity=4, limit=1, shards=2)
    assert move_units(sale, shard=0, units=-2) == -2
    assert move_units(sale, shard=1, units=2) == 2
    client = client_for(shopper_of(0, 2))

    # While another job (a reconcile) holds the lock under which units move
    with redis_sales.sale_move_lock(sale.pk, wait_ms=0) as held:
        assert held is not None
        blocked = purchase(client, sale, key="k")

    # Then the shopper is asked to come back, not told the sale is sold out
    assert (blocked.status_code, blocked.json()["code"]) == (503, "unavailable")
    assert sale_gate.refusal(sale.pk) is None
    # And once the lock is free the same request moves units over and is accepted
    accepted = purchase(client, sale, key="k")
    assert accepted.status_code == 202
    assert [state.remaining for state in redis_sales.sale_shard_states(sale.pk, 2)] == [1, 2]


def test_a_dry_shard_whose_sales_units_are_in_transit_answers_503_not_sold_out(make_sale, brokered):
    # Given a sale of two shards whose shard 0 is empty, and a mover that has taken shard 1's
    # units and not yet given them on
    sale = make_sale(quantity=4, limit=1, shards=2)
    assert move_units(sale, shard=0, units=-2) == -2
    client = client_for(shopper_of(0, 2))
    with (
        redis_sales.sale_move_lock(sale.pk, wait_ms=0) as mover,
        redis_sales.sale_units_in_transit(sale.pk, mover),
    ):
        move = {"sale_id": sale.pk, "shards": 2, "fence": mover.fence}
        assert redis_sales.sale_shift_units(**move, shard=1, units=-2) == -2
        in_transit = purchase(client, sale, key="k")
        assert redis_sales.sale_shift_units(**move, shard=1, units=2) == 2

    # Then the shopper is asked to come back, not told (nor the process's gate) sold out
    assert (in_transit.status_code, in_transit.json()["code"]) == (503, "unavailable")
    assert sale_gate.refusal(sale.pk) is None
    # And once the units have landed the same request moves some over and is accepted
    assert purchase(client, sale, key="k").status_code == 202


def test_a_sold_out_sales_dry_shard_says_sold_out_while_another_shopper_holds_the_move_lock(make_sale, brokered):
    # Given a sale of two shards with no unit left in either
    sale = make_sale(quantity=2, limit=1, shards=2)
    assert move_units(sale, shard=0, units=-1) == -1
    assert move_units(sale, shard=1, units=-1) == -1
    client = client_for(shopper_of(0, 2))

    # While another shopper's borrow holds the move lock to look, with no unit in transit
    with redis_sales.sale_move_lock(sale.pk, wait_ms=0) as looker:
        assert looker is not None
        refused = purchase(client, sale, key="k")

    # Then the answer is the final one, not "come back" (seen in a storm at a sale's end: every
    # last shopper but one found the lock held and got 503)
    assert (refused.status_code, refused.json()["code"]) == (409, "sold_out")


def test_a_dry_shard_borrows_from_a_shard_redis_lost_once_it_is_rebuilt(make_sale, brokered):
    # Given a sale of two shards whose shard 0 is empty, and shard 1, with units, lost by Redis
    sale = make_sale(quantity=4, limit=1, shards=2)
    assert move_units(sale, shard=0, units=-2) == -2
    lose_shard(sale.pk, 1, 2)

    # When a shopper of shard 0 buys
    response = purchase(client_for(shopper_of(0, 2)), sale, key="k")

    # Then shard 1 is rebuilt with its units and lends one: not a false sold out
    assert response.status_code == 202, response.content
    assert sale_gate.refusal(sale.pk) is None
    assert sum(state.remaining for state in redis_sales.sale_shard_states(sale.pk, 2)) == 3


def test_a_shards_writer_takes_up_the_allotments_redis_moved(make_sale, brokered):
    # Given shard 0's shoppers bought units Redis moved to it from shard 1 and shard 2
    sale = make_sale(quantity=30, limit=1, shards=3)
    rids = [purchase(client_for(shopper_of(0, 3)), sale, key="k").json()["reservation_id"] for _ in range(14)]
    redis_allotments = [state.allotment for state in redis_sales.sale_shard_states(sale.pk, 3)]
    assert redis_allotments[0] >= 14 and sum(redis_allotments) == 30

    # When shard 0's writer finds its database allotment (ten) short
    order_writer_drain(sale_id=sale.pk, consumer="test", shard=0, shards=3)

    # Then it wrote every order, and the database's allotments are Redis's
    assert set(Order.objects.values_list("reservation_id", flat=True)) == set(rids)
    assert not FailedReservation.objects.exists()
    assert [row.allotment for row in sale.shards.order_by("index")] == redis_allotments
    report = check_invariants()
    assert report.ok, report.violations
