"""Every admin action reports, per object, what succeeded and what failed and why: one helper."""

import pytest
import redis
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from core.admin import apply_to_each
from orders.exceptions import InvalidTransition
from shop.models import FlashSale
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def test_a_refusal_and_an_outage_are_messages_per_object_and_successes_are_logged(make_sale):
    sales = [make_sale(quantity=1), make_sale(quantity=1), make_sale(quantity=1)]
    request = RequestFactory().post("/admin/shop/flashsale/")
    request.user = StaffFactory(is_superuser=True)
    request.session = {}
    request._messages = FallbackStorage(request)
    outcomes = iter([None, InvalidTransition("it was paid meanwhile"), redis.ConnectionError("down")])

    def service(sale):
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    done = apply_to_each(admin.site._registry[FlashSale], request, sales, service, done="Cancelled")

    said = [str(message) for message in get_messages(request)]
    assert done == 1
    assert said == [
        f"{sales[1]}: not done: it was paid meanwhile",
        f"{sales[2]}: not done: a service is unavailable, try again",
        "Cancelled: 1 of 3.",
    ]
    assert [entry.object_id for entry in LogEntry.objects.all()] == [str(sales[0].pk)]
