"""A sale's lifecycle jobs (preheat, cancel, end) racing each other and the crowd."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import Order
from purchase.tasks import flash_sale_end
from shop.models import FlashSale
from shop.services import flash_sale_cancel, flash_sale_preheat
from tests.concurrency import start_thread, wait_until_blocked_or_done
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_preheat_racing_a_cancel_never_reopens_the_cancelled_sale(make_sale, staff, monkeypatch):
    sale = make_sale(quantity=5)
    real_load = redis_sales.sale_load
    competitor = []

    def load_after_a_cancel(**kwargs):
        # The preheat has read the sale as live; a cancel runs now, before Redis is written
        thread, outcome = start_thread(lambda: flash_sale_cancel(sale=FlashSale.objects.get(pk=sale.pk), actor=staff))
        wait_until_blocked_or_done(thread)
        competitor.append((thread, outcome))
        return real_load(**kwargs)

    monkeypatch.setattr(redis_sales, "sale_load", load_after_a_cancel)
    flash_sale_preheat(sale=sale)
    monkeypatch.setattr(redis_sales, "sale_load", real_load)
    thread, outcome = competitor[0]
    thread.join(30)
    assert not isinstance(outcome[0], Exception), outcome

    # The sale is cancelled in the database, so Redis must admit no one
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.CANCELLED
    response = purchase(client_for(UserFactory()), sale, key="after-cancel")
    assert (response.status_code, response.json().get("code")) == (409, "ended")
    assert not Order.objects.exists()
    assert check_invariants().ok, check_invariants().violations


def test_a_preheat_of_a_closed_sale_loads_nothing(make_sale, staff, redis_client):
    sale = make_sale(quantity=5)
    flash_sale_cancel(sale=sale, actor=staff)
    redis_client.flushdb()

    assert flash_sale_preheat(sale=sale) == 0
    assert not redis_sales.sale_is_loaded(sale.pk)


def test_the_sale_end_job_closes_admissions_before_its_last_look_at_the_stream(make_sale, brokered, monkeypatch):
    # Given a sale whose end has passed by the worker's clock but not yet by Redis's
    sale = make_sale(quantity=5, starts_in=-120, lasts=3600)
    FlashSale.objects.filter(pk=sale.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    client = client_for(UserFactory())
    real_in_stream = redis_sales.reservations_in_stream
    answers = []

    def admission_after_the_last_look(sale_id, shard=0, shards=1):
        entries = real_in_stream(sale_id, shard, shards)
        if not answers:
            # A shopper's purchase reaches Redis right after the job saw an empty stream
            answers.append(purchase(client, sale, key="last-second"))
        return entries

    monkeypatch.setattr(redis_sales, "reservations_in_stream", admission_after_the_last_look)

    # When the end job runs
    assert flash_sale_end(FlashSale.objects.get(pk=sale.pk))
    monkeypatch.setattr(redis_sales, "reservations_in_stream", real_in_stream)

    # Then that purchase was refused, not accepted and then lost with the sale's keys
    answer = answers[0]
    if answer.status_code == 202:
        rid = answer.json()["reservation_id"]
        assert client.get(f"/api/v1/purchases/{rid}/").json()["status"] == "confirmed"
    else:
        assert (answer.status_code, answer.json()["code"]) == (409, "ended")
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.ENDED
    assert check_invariants().ok, check_invariants().violations


def test_a_sale_of_several_shards_ends_only_once_every_shards_reservations_are_written(make_sale, brokered):
    # Given a sale of three stock shards with a reservation waiting in each shard's stream
    sale = make_sale(quantity=6, shards=3)
    buyers = []
    while {redis_sales.home_shard(user.pk, 3) for user in buyers} != {0, 1, 2}:
        buyers.append(UserFactory())
    rids = [purchase(client_for(user), sale, key="k").json()["reservation_id"] for user in buyers]
    FlashSale.objects.filter(pk=sale.pk).update(ends_at=timezone.now() - timedelta(seconds=1))

    # When the end job runs
    assert flash_sale_end(FlashSale.objects.get(pk=sale.pk))

    # Then every shard's reservations became orders before the sale's keys were dropped
    assert set(Order.objects.filter(flash_sale=sale).values_list("reservation_id", flat=True)) == set(rids)
    sale.refresh_from_db()
    assert (sale.status, sale.units_sold, sale.admissions) == (
        FlashSale.Status.ENDED,
        len(rids),
        {"accepted": len(rids)},
    )
    assert not any(redis_sales.sale_shard_states(sale.pk, 3))
    assert check_invariants().ok, check_invariants().violations
