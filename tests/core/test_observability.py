import os
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from core.metrics import metrics_forget_dead_processes
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


def test_storefront_purchases_are_counted_by_outcome_like_api_ones(client, make_sale):
    def counted(outcome: str) -> float:
        return REGISTRY.get_sample_value("shop_purchase_outcomes_total", {"outcome": outcome}) or 0.0

    sale = make_sale(quantity=1)
    before = counted("accepted"), counted("sold_out")
    for user in (UserFactory(), UserFactory()):
        client.force_login(user)
        client.post(f"/sales/{sale.pk}/buy/", {"quantity": 1, "attempt": "storefront-attempt-1"})

    assert (counted("accepted"), counted("sold_out")) == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(
    ("networks", "token", "headers", "status"),
    [
        ([], "", {}, 403),
        ([], "s3cret-token", {}, 403),
        ([], "s3cret-token", {"HTTP_AUTHORIZATION": "Bearer wrong"}, 403),
        ([], "s3cret-token", {"HTTP_AUTHORIZATION": "Bearer s3cret-token"}, 200),
        (["10.0.0.0/8"], "", {"REMOTE_ADDR": "10.1.2.3"}, 200),
        (["10.0.0.0/8"], "", {"REMOTE_ADDR": "192.0.2.1"}, 403),
        (["127.0.0.1/32"], "", {}, 200),
    ],
)
def test_metrics_need_the_token_or_an_allowed_network(client, settings, networks, token, headers, status):
    settings.METRICS_ALLOWED_NETWORKS = networks
    settings.METRICS_TOKEN = token

    response = client.get("/metrics", **headers)

    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"
        assert b"shop_flash_sale_remaining_units" not in response.content


def test_a_new_web_worker_stops_the_live_gauges_of_dead_ones_counting(tmp_path, monkeypatch):
    # Given the metric files of a worker that died and of one that lives (this process)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead = _a_pid_that_is_gone()
    for pid in (dead, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")

    metrics_forget_dead_processes()

    # Then only the dead worker's live gauges are gone; counters keep what every worker counted
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"]
    )


def _a_pid_that_is_gone() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid
