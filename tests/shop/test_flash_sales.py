from datetime import timedelta

import pytest
from django.utils import timezone

from core.redis import redis_client
from inventory import redis_sales
from inventory.services import stock_receive
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.writer import order_writer_drain
from purchase.tasks import flash_sales_advance
from shop.models import FlashSale, SaleDrift
from shop.services import flash_sale_cancel, flash_sale_preheat, flash_sale_reconcile
from tests.conftest import client_for, purchase
from tests.factories import StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stock(staff):
    return stock_receive(stock=StockFactory(sku__code="DROP-1", low_stock_threshold=0), quantity=50, actor=staff,
                         reason="opening")  # fmt: skip


def sale_body(**overrides) -> dict:
    now = timezone.now()
    return {"sku": "DROP-1", "price": "19.99", "quantity": 20, "starts_at": (now + timedelta(minutes=5)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_user_limit": 2, **overrides}  # fmt: skip


def test_staff_create_a_sale_and_its_units_are_allocated(stock, staff, redis_client):
    request = sale_body()
    response = client_for(staff).post("/api/v1/flash-sales/", request, HTTP_IDEMPOTENCY_KEY="create-1")

    assert response.status_code == 201
    body = response.json()
    assert (body["sku"], body["quantity"], body["remaining"], body["status"]) == ("DROP-1", 20, 20, "scheduled")
    assert body["shards"] == 1
    stock.refresh_from_db()
    assert stock.allocated == 20
    assert stock.movements.filter(kind="allocate", reference=f"sale:{body['id']}").exists()

    replay = client_for(staff).post("/api/v1/flash-sales/", request, HTTP_IDEMPOTENCY_KEY="create-1")
    assert (replay.status_code, replay.json()["id"]) == (201, body["id"])
    assert FlashSale.objects.count() == 1
    reused = client_for(staff).post("/api/v1/flash-sales/", {**request, "quantity": 3}, HTTP_IDEMPOTENCY_KEY="create-1")
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")


def test_a_sale_split_into_stock_shards_shares_its_quantity_between_them(stock, staff, redis_client):
    response = client_for(staff).post("/api/v1/flash-sales/", sale_body(shards=3))

    assert response.status_code == 201
    assert (response.json()["shards"], response.json()["remaining"]) == (3, 20)
    sale = FlashSale.objects.get()
    assert [(shard.index, shard.allotment) for shard in sale.shards.all()] == [(0, 7), (1, 7), (2, 6)]
    assert flash_sale_preheat(sale=sale) == 20
    assert [state.remaining for state in redis_sales.sale_shard_states(sale.pk, 3)] == [7, 7, 6]
    report = check_invariants()
    assert report.ok, report.violations


def test_a_sale_larger_than_available_stock_is_409(stock, staff, redis_client):
    response = client_for(staff).post("/api/v1/flash-sales/", sale_body(quantity=51))

    assert (response.status_code, response.json()["code"]) == (409, "insufficient_stock")
    assert not FlashSale.objects.exists()
    stock.refresh_from_db()
    assert stock.allocated == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sku": "NOPE"}, "sku"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "5"}, "quantity"),
        ({"price": "-1"}, "price"),
        ({"price": "abc"}, "price"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"shards": 0}, "shards"),
        ({"shards": 65}, "shards"),
        ({"shards": "3"}, "shards"),
        ({"starts_at": "yesterday"}, "starts_at"),
        ({"ends_at": (timezone.now() - timedelta(days=1)).isoformat()}, "ends_at"),
    ],
)
def test_bad_sale_input_is_400_and_creates_nothing(stock, staff, overrides, field, redis_client):
    response = client_for(staff).post("/api/v1/flash-sales/", sale_body(**overrides))

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not FlashSale.objects.exists()


def test_shoppers_cannot_create_preheat_or_see_stats(stock, user_client, make_sale):
    sale = make_sale()
    assert user_client.post("/api/v1/flash-sales/", sale_body()).status_code == 403
    assert user_client.post(f"/api/v1/flash-sales/{sale.pk}/preheat/").status_code == 403
    assert user_client.get(f"/api/v1/flash-sales/{sale.pk}/stats/").status_code == 403


def test_preheat_loads_and_stats_agree(make_sale, staff, brokered):
    sale = make_sale(quantity=5)
    redis_client().flushdb()
    staff_client = client_for(staff)

    assert staff_client.post(f"/api/v1/flash-sales/{sale.pk}/preheat/").json() == {"remaining": 5}
    purchase(client_for(UserFactory()), sale, key="a")
    purchase(client_for(UserFactory()), sale, key="a")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    purchase(client_for(UserFactory()), sale, key="a")

    stats = staff_client.get(f"/api/v1/flash-sales/{sale.pk}/stats/").json()
    assert stats == {"quantity": 5, "remaining_cache": 2, "pending": 1, "orders_confirmed": 2, "orders_paid": 0,
                     "orders_cancelled": 0, "units_sold": 2, "consistent": True}  # fmt: skip
    assert staff_client.post("/api/v1/flash-sales/999999/preheat/").status_code == 404


def test_the_clock_moves_sales_from_scheduled_to_live_to_ended(make_sale, brokered):
    sale = make_sale(quantity=10, starts_in=-60)
    FlashSale.objects.filter(pk=sale.pk).update(status=FlashSale.Status.SCHEDULED)

    flash_sales_advance()
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.LIVE

    # Given two accepted reservations still in the stream when the sale's time runs out
    buyers = [UserFactory(), UserFactory()]
    for buyer in buyers:
        purchase(client_for(buyer), sale, key="k")
    FlashSale.objects.filter(pk=sale.pk).update(ends_at=timezone.now() - timedelta(seconds=1))

    # When the clock task runs, the reservations are written first, then the unsold units return
    flash_sales_advance()

    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.ENDED
    assert Order.objects.filter(flash_sale=sale).count() == 2
    stock = sale.sku.stock
    stock.refresh_from_db()
    assert stock.allocated == 2
    assert stock.movements.filter(kind="release", quantity=8, reference=f"sale:{sale.pk}").exists()
    assert not redis_sales.sale_is_loaded(sale.pk)
    assert purchase(client_for(UserFactory()), sale, key="late").json()["code"] == "ended"
    assert check_invariants().ok, check_invariants().violations


def test_cancelling_a_sale_releases_unsold_units_and_fails_reservations_in_flight(make_sale, staff, brokered):
    sale = make_sale(quantity=10)
    buyer = UserFactory()
    rid = purchase(client_for(buyer), sale, key="k").json()["reservation_id"]

    flash_sale_cancel(sale=sale, actor=staff)
    order_writer_drain(sale_id=sale.pk, consumer="test")

    assert FailedReservation.objects.get(reservation_id=rid).reason == "sale_closed"
    assert purchase(client_for(UserFactory()), sale, key="k").json()["code"] == "ended"
    stock = sale.sku.stock
    stock.refresh_from_db()
    assert stock.allocated == 0
    assert check_invariants().ok, check_invariants().violations


def test_reconcile_repairs_drift_toward_the_database_and_records_it(make_sale, brokered):
    sale = make_sale(quantity=10, limit=2)
    buyer = UserFactory()
    purchase(client_for(buyer), sale, key="a")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    purchase(client_for(UserFactory()), sale, key="in-flight")
    # Redis drifts: units appear from nowhere and a shopper's tally is lost
    keys = redis_sales.SaleKeys(sale.pk)
    redis_client().incrby(keys.remaining, 5)
    redis_client().hdel(keys.buyers, buyer.pk)

    result = flash_sale_reconcile(sale=sale)

    assert result.drifted
    assert (result.remaining_before, result.remaining_expected, result.in_flight) == (13, 8, 1)
    assert redis_sales.sale_remaining(sale.pk) == 8
    assert int(redis_client().hget(keys.buyers, buyer.pk)) == 1
    assert SaleDrift.objects.filter(flash_sale=sale, remaining_before=13, remaining_expected=8).exists()
    assert check_invariants().ok, check_invariants().violations
    assert not flash_sale_reconcile(sale=sale).drifted
