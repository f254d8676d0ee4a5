"""The order writer gathers a storm into batches instead of writing it an order or two at a time."""

import logging

import pytest

from orders import writer
from orders.invariants import check_invariants
from orders.models import Order
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_after_a_short_batch_the_writer_lingers_and_writes_what_arrived_meanwhile_in_one_batch(
    make_sale, brokered, settings, monkeypatch, caplog
):
    settings.ORDER_WRITER_LINGER_MS = 50
    sale = make_sale(quantity=20)
    assert purchase(client_for(UserFactory()), sale, key="first").status_code == 202
    lingered = []

    def ten_more_arrive(seconds: float) -> None:
        # Purchases that arrive while the writer waits: real admissions into the same stream.
        if not lingered:
            for i in range(10):
                assert purchase(client_for(UserFactory()), sale, key=f"later-{i}").status_code == 202
        lingered.append(seconds)

    monkeypatch.setattr(writer, "linger", ten_more_arrive)
    with caplog.at_level(logging.INFO, logger="orders.writer"):
        assert writer.order_writer_drain(sale_id=sale.pk, consumer="test") is True

    batches = [record.args[1] for record in caplog.records if record.getMessage().startswith(f"sale {sale.pk}: wrote")]
    assert batches == [1, 10]
    assert lingered == [0.05, 0.05]
    assert Order.objects.filter(flash_sale=sale).count() == 11
    assert check_invariants().ok
