import pytest

from inventory.models import Stock, StockAlert
from inventory.services import stock_receive
from tests.factories import StockFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stock(staff) -> Stock:
    stock = StockFactory(sku__code="KETTLE-1", low_stock_threshold=2)
    return stock_receive(stock=stock, quantity=10, actor=staff, reason="opening")


def snapshot(stock: Stock) -> tuple:
    stock.refresh_from_db()
    return stock.on_hand, stock.allocated, stock.version, stock.movements.count()


def test_stock_in_records_a_movement(staff_client, stock, staff):
    response = staff_client.post("/api/v1/inventory/stock/KETTLE-1/in/", {"quantity": 5, "reason": "delivery"})

    assert response.status_code == 200
    assert response.json() == {"sku": "KETTLE-1", "on_hand": 15, "allocated": 0, "available": 15,
                               "low_stock_threshold": 2, "version": 3}  # fmt: skip
    movement = stock.movements.first()
    assert (movement.kind, movement.quantity, movement.actor, movement.reason) == ("in", 5, staff, "delivery")


def test_stock_out_beyond_available_is_409(staff_client, stock):
    before = snapshot(stock)

    response = staff_client.post("/api/v1/inventory/stock/KETTLE-1/out/", {"quantity": 11, "reason": "lost"})

    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert snapshot(stock) == before


def test_adjust_with_a_stale_version_is_409_version_conflict(staff_client, stock):
    stale = stock.version - 1
    before = snapshot(stock)

    response = staff_client.post(
        "/api/v1/inventory/stock/KETTLE-1/adjust/", {"on_hand": 4, "version": stale, "reason": "count"}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "version_conflict"
    assert snapshot(stock) == before


def test_adjust_with_the_current_version_sets_the_count(staff_client, stock):
    response = staff_client.post(
        "/api/v1/inventory/stock/KETTLE-1/adjust/", {"on_hand": 4, "version": stock.version, "reason": "count"}
    )

    assert response.status_code == 200
    assert response.json()["on_hand"] == 4


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("in", {"quantity": -1, "reason": "x"}, "quantity"),
        ("in", {"quantity": 0, "reason": "x"}, "quantity"),
        ("in", {"quantity": 1.5, "reason": "x"}, "quantity"),
        ("in", {"quantity": "3", "reason": "x"}, "quantity"),
        ("in", {"quantity": True, "reason": "x"}, "quantity"),
        ("in", {"quantity": 10**12, "reason": "x"}, "quantity"),
        ("in", {"quantity": 1}, "reason"),
        ("in", {"quantity": 1, "reason": ""}, "reason"),
        ("in", {"quantity": 1, "reason": "x" * 256}, "reason"),
        ("out", {"quantity": -5, "reason": "x"}, "quantity"),
        ("out", {"reason": "x"}, "quantity"),
        ("adjust", {"on_hand": -1, "version": 2, "reason": "x"}, "on_hand"),
        ("adjust", {"on_hand": 1, "reason": "x"}, "version"),
        ("adjust", {"on_hand": 1, "version": "2", "reason": "x"}, "version"),
        ("adjust", {"on_hand": None, "version": 2, "reason": "x"}, "on_hand"),
    ],
)
def test_bad_input_is_a_400_with_the_field_named_and_changes_nothing(staff_client, stock, action, body, field):
    before = snapshot(stock)

    response = staff_client.post(f"/api/v1/inventory/stock/KETTLE-1/{action}/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert snapshot(stock) == before


@pytest.mark.parametrize("action", ["in", "out", "adjust"])
def test_unknown_sku_is_404(staff_client, stock, action):
    response = staff_client.post(
        f"/api/v1/inventory/stock/NO-SUCH/{action}/", {"quantity": 1, "on_hand": 1, "version": 1, "reason": "x"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_non_object_body_is_a_400(staff_client, stock):
    response = staff_client.post("/api/v1/inventory/stock/KETTLE-1/in/", [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_shoppers_get_403_and_anonymous_401(user_client, api_client, stock):
    assert user_client.get("/api/v1/inventory/stock/").status_code == 403
    assert user_client.post("/api/v1/inventory/stock/KETTLE-1/in/", {"quantity": 1, "reason": "x"}).status_code == 403
    assert api_client.get("/api/v1/inventory/alerts/").status_code == 401
    assert snapshot(stock)[0] == 10


def test_stock_list_filters_low_stock(staff_client, stock, staff):
    plenty = stock_receive(stock=StockFactory(sku__code="PLENTY", low_stock_threshold=0), quantity=5, actor=staff,
                           reason="x")  # fmt: skip
    staff_client.post("/api/v1/inventory/stock/KETTLE-1/out/", {"quantity": 9, "reason": "x"})

    low = staff_client.get("/api/v1/inventory/stock/?low=true").json()["results"]
    not_low = staff_client.get("/api/v1/inventory/stock/?low=false").json()["results"]

    assert [row["sku"] for row in low] == ["KETTLE-1"]
    assert [row["sku"] for row in not_low] == [plenty.sku.code]
    assert staff_client.get("/api/v1/inventory/stock/?low=maybe").status_code == 400


def test_movements_filter_by_sku(staff_client, stock, staff):
    stock_receive(stock=StockFactory(sku__code="OTHER"), quantity=1, actor=staff, reason="x")

    rows = staff_client.get("/api/v1/inventory/movements/?sku=KETTLE-1").json()["results"]

    assert [(row["sku"], row["kind"], row["quantity"]) for row in rows] == [("KETTLE-1", "in", 10)]


def test_alerts_list_and_acknowledge(staff_client, stock, staff):
    staff_client.post("/api/v1/inventory/stock/KETTLE-1/out/", {"quantity": 8, "reason": "x"})
    [alert] = staff_client.get("/api/v1/inventory/alerts/?open=true").json()["results"]
    assert (alert["sku"], alert["open"], alert["available_at_open"]) == ("KETTLE-1", True, 2)

    response = staff_client.post(f"/api/v1/inventory/alerts/{alert['id']}/acknowledge/")

    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == staff.username
    assert StockAlert.objects.get().acknowledged_at is not None
    assert staff_client.get("/api/v1/inventory/alerts/?open=false").json()["count"] == 0
    assert staff_client.post("/api/v1/inventory/alerts/999999/acknowledge/").status_code == 404


def test_a_retried_stock_in_with_the_same_key_counts_once(staff_client, stock):
    body = {"quantity": 5, "reason": "delivery 42"}

    first = staff_client.post("/api/v1/inventory/stock/KETTLE-1/in/", body, HTTP_IDEMPOTENCY_KEY="delivery-42")
    retry = staff_client.post("/api/v1/inventory/stock/KETTLE-1/in/", body, HTTP_IDEMPOTENCY_KEY="delivery-42")

    assert retry.status_code == first.status_code == 200
    assert retry.json() == first.json()
    stock.refresh_from_db()
    assert stock.on_hand == 15


def test_a_refusal_is_the_first_answer_to_its_idempotency_key(staff_client, stock):
    # Given a stock-out refused for want of stock, under key K
    refused = staff_client.post(
        "/api/v1/inventory/stock/KETTLE-1/out/", {"quantity": 11, "reason": "order"}, HTTP_IDEMPOTENCY_KEY="K"
    )
    assert refused.status_code == 409
    # When stock arrives and the same request is repeated with K
    staff_client.post("/api/v1/inventory/stock/KETTLE-1/in/", {"quantity": 5, "reason": "delivery"})
    before = snapshot(stock)
    again = staff_client.post(
        "/api/v1/inventory/stock/KETTLE-1/out/", {"quantity": 11, "reason": "order"}, HTTP_IDEMPOTENCY_KEY="K"
    )

    # Then it gets its first answer, and no units leave
    assert (again.status_code, again.json()) == (409, refused.json())
    assert snapshot(stock) == before
