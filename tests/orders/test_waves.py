"""A sale whose units are released in waves: each wave's units go on offer at its time by Redis's
clock, inside the admission script; between waves a purchase is sold out until the next one."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from core.redis import redis_client
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.writer import order_writer_drain
from shop.models import FlashSale
from shop.services import flash_sale_shard_waves
from tests.concurrency import storm
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def redis_now() -> datetime:
    seconds, micros = redis_client().time()
    return datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)


def crowd_buys(sale: FlashSale, shoppers: int) -> list:
    clients = [client_for(UserFactory()) for _ in range(shoppers)]
    sent = storm(list(range(shoppers)), lambda i: purchase(clients[i], sale, key="k"), threads=15)
    return [response for _, response in sent]


def test_a_storm_across_a_wave_sells_the_first_waves_units_before_it_and_the_rest_after(make_sale):
    now = timezone.now()
    second_wave = (now + timedelta(seconds=6)).replace(microsecond=0)
    sale = make_sale(quantity=20, limit=1, waves=[(now - timedelta(seconds=30), 8), (second_wave, 12)])

    before = crowd_buys(sale, 30)

    assert redis_now() < second_wave  # the storm ended before the wave opened
    assert sum(response.status_code == 202 for response in before) == 8
    refusals = [response.json() for response in before if response.status_code != 202]
    assert {(body["code"], body["next_wave_at"]) for body in refusals} == {
        ("sold_out", second_wave.isoformat().replace("+00:00", "Z"))
    }
    shown = client_for(UserFactory()).get(f"/api/v1/flash-sales/{sale.pk}/").json()
    assert shown["next_wave_at"] == second_wave.isoformat().replace("+00:00", "Z")
    assert [wave["units"] for wave in shown["waves"]] == [8, 12]

    while redis_now() < second_wave:
        time.sleep(0.05)
    after = crowd_buys(sale, 30)

    assert sum(response.status_code == 202 for response in after) == 12
    assert {response.json()["code"] for response in after if response.status_code != 202} == {"sold_out"}
    assert all("next_wave_at" not in response.json() for response in after if response.status_code != 202)
    order_writer_drain(sale_id=sale.pk, consumer="test")  # what a drain that ended mid-storm left
    assert Order.objects.filter(flash_sale=sale).count() == 20
    assert not FailedReservation.objects.exists()
    report = check_invariants()
    assert report.ok, report.violations


def test_no_wave_opens_early_whatever_the_web_servers_clock_says(make_sale, monkeypatch):
    now = timezone.now()
    wave = now + timedelta(minutes=10)
    sale = make_sale(quantity=3, limit=1, waves=[(now - timedelta(seconds=30), 1), (wave, 2)])
    assert purchase(client_for(UserFactory()), sale, key="k").status_code == 202
    # This web server's clock runs an hour ahead: by it, the second wave opened long ago.
    ahead = timedelta(hours=1)
    real_now, real_time = timezone.now, time.time
    monkeypatch.setattr(timezone, "now", lambda: real_now() + ahead)
    monkeypatch.setattr(time, "time", lambda: real_time() + ahead.total_seconds())

    responses = crowd_buys(sale, 5)

    assert {(response.status_code, response.json()["code"]) for response in responses} == {(409, "sold_out")}
    assert Order.objects.filter(flash_sale=sale).count() == 1
    assert redis_sales.sale_remaining(sale.pk) == 2  # the second wave's units, waiting for Redis's clock


@pytest.mark.parametrize(
    ("waves", "message"),
    [
        ([(0, 5), (0, 5)], "after the one before"),
        ([(20, 5), (10, 5)], "after the one before"),
        ([(-120, 5), (10, 5)], "inside the sale's window"),
        ([(0, 5), (7200, 5)], "inside the sale's window"),
        ([(0, 4), (10, 5)], "quantity (10)"),
        ([(0, 10), (10, 0)], "greater than or equal to 1"),
    ],
)
def test_waves_out_of_order_outside_the_window_or_not_summing_to_the_quantity_are_400(staff, waves, message):
    from inventory.services import stock_receive
    from tests.factories import StockFactory

    stock = stock_receive(stock=StockFactory(), quantity=20, actor=staff, reason="opening")
    starts_at = timezone.now() + timedelta(minutes=5)
    body = {
        "sku": stock.sku.code, "price": "5.00", "quantity": 10, "per_user_limit": 1,
        "starts_at": starts_at.isoformat(), "ends_at": (starts_at + timedelta(hours=1)).isoformat(),
        "waves": [{"at": (starts_at + timedelta(seconds=at)).isoformat(), "units": units} for at, units in waves],
    }  # fmt: skip

    response = client_for(staff).post("/api/v1/flash-sales/", body, format="json")

    assert response.status_code == 400, response.json()
    assert message in str(response.json()["errors"]["waves"])
    assert not FlashSale.objects.exists()


def shoppers_at_home_in(shard: int, shards: int, count: int) -> list:
    """Shoppers whose home is one stock shard: any unit of another shard they buy is borrowed."""
    found = []
    while len(found) < count:
        user = UserFactory()
        if redis_sales.home_shard(user.pk, shards) == shard:
            found.append(user)
    return found


def test_a_sale_in_stock_shards_releases_each_wave_across_its_shards_and_moves_only_released_units(make_sale):
    # The crowd first: the storm before the second wave must fit in its 8 s on a busy machine.
    crowd = shoppers_at_home_in(0, 3, 40)  # all of them in shard 0: everything else must be borrowed
    clients = [client_for(user) for user in crowd]
    now = timezone.now()
    second_wave = (now + timedelta(seconds=8)).replace(microsecond=0)
    sale = make_sale(quantity=20, limit=1, shards=3, waves=[(now - timedelta(seconds=30), 8), (second_wave, 12)])
    # Each shard's waves: its even share of what is released by each time (8: 3/3/2; 20: 7/7/6).
    assert [[wave.units for wave in flash_sale_shard_waves(sale=sale, shard=s)] for s in range(3)] == [
        [3, 4],
        [3, 4],
        [2, 4],
    ]

    before = storm(list(range(20)), lambda i: purchase(clients[i], sale, key="k"), threads=10)

    assert redis_now() < second_wave
    assert sum(response.status_code == 202 for _, response in before) == 8
    assert {response.json()["code"] for _, response in before if response.status_code != 202} == {"sold_out"}
    states = redis_sales.sale_shard_states(sale.pk, 3)
    assert [state.on_offer for state in states] == [0, 0, 0]
    assert [state.remaining for state in states] == [4, 4, 4]  # the next wave's units, where they were put

    while redis_now() < second_wave:
        time.sleep(0.05)
    after = storm(list(range(20, 40)), lambda i: purchase(clients[i], sale, key="k"), threads=10)

    assert sum(response.status_code == 202 for _, response in after) == 12
    # A drain scheduled mid-storm may end before the storm's last reservations: write them all.
    order_writer_drain(sale_id=sale.pk, consumer="test", shard=0, shards=3)
    assert Order.objects.filter(flash_sale=sale).count() == 20
    assert not FailedReservation.objects.exists()
    report = check_invariants()
    assert report.ok, report.violations
