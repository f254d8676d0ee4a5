import pytest

from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_metrics_export_requests_purchases_database_and_alerts(client, make_sale):
    sale = make_sale(quantity=1)
    purchase(client_for(UserFactory()), sale, key="a")
    purchase(client_for(UserFactory()), sale, key="b")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'shop_purchase_outcomes_total{outcome="accepted"}' in text
    assert 'shop_purchase_outcomes_total{outcome="sold_out"}' in text
    assert 'shop_redis_script_seconds_count{script="admit"}' in text
    assert "shop_order_writer_batch_size_count" in text
    assert "shop_open_stock_alerts" in text
    assert f'shop_flash_sale_remaining_units{{sale="{sale.pk}"}} 0.0' in text
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text


def test_every_response_carries_a_request_id(client):
    generated = client.get("/livez")["X-Request-ID"]
    echoed = client.get("/livez", HTTP_X_REQUEST_ID="edge-proxy-1234")["X-Request-ID"]
    replaced = client.get("/livez", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]

    assert len(generated) == 32
    assert echoed == "edge-proxy-1234"
    assert replaced != "bad id with spaces"
    assert len(replaced) == 32
