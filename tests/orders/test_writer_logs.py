"""One purchase can be followed from its request to its order in the logs."""

import json
import logging

import pytest

from orders.models import Order
from orders.writer import order_writer_drain
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.processes import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def buy(client, sale, request_id: str):
    return client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": 1}, format="json",
                       HTTP_IDEMPOTENCY_KEY="k", HTTP_X_REQUEST_ID=request_id)  # fmt: skip


def test_the_writer_logs_each_order_under_the_purchase_request_id(make_sale, brokered, caplog):
    sale = make_sale(quantity=5)
    buy(client_for(UserFactory()), sale, "follow-me-0001")

    with caplog.at_level(logging.INFO, logger="orders.writer"):
        order_writer_drain(sale_id=sale.pk, consumer="test")

    order = Order.objects.get()
    [record] = [record for record in caplog.records if hasattr(record, "order_id")]
    assert (record.request_id, record.order_id, record.reservation_id) == (
        "follow-me-0001",
        order.pk,
        order.reservation_id,
    )


def test_a_real_worker_logs_json_lines_with_the_purchase_request_id(make_sale, brokered, tmp_path):
    sale = make_sale(quantity=5)
    with running_worker(tmp_path, "writer", LOG_FORMAT="json"):
        buy(client_for(UserFactory()), sale, "follow-me-0002")
        wait_for(lambda: Order.objects.exists(), timeout=60, what="the order")

    lines = [json.loads(line) for line in (tmp_path / "writer.log").read_text().splitlines() if line.startswith("{")]
    written = [line for line in lines if line.get("order_id") == Order.objects.get().pk]
    assert written and written[0]["request_id"] == "follow-me-0002"
    assert any(line["name"].startswith("celery") for line in lines)  # Celery's own lines are JSON too
