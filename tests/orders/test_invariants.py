"""check_invariants sees what Redis offers against the waves, and Redis's terms against the
database's (design.md, invariants 6 and 7): each drift made by hand in Redis is reported."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from inventory import redis_sales
from orders.invariants import check_invariants
from tests.factories import UserFactory
from tests.sale_engine import shopper_of

pytestmark = pytest.mark.django_db(transaction=True)


def reported(sale) -> list[str]:
    return [violation["invariant"] for violation in check_invariants(sale_ids=[sale.pk]).violations]


def test_a_wave_on_offer_before_its_time_is_reported(make_sale, redis_client):
    now = timezone.now()
    sale = make_sale(quantity=6, shards=2, waves=[(now - timedelta(seconds=30), 2), (now + timedelta(minutes=10), 4)])
    assert reported(sale) == []

    # Shard 1 forgets its waves: every unit it holds is on offer now, the next wave's too
    redis_client.hset(redis_sales.SaleKeys(sale.pk, 1, 2).meta, "waves", "")

    assert reported(sale) == ["waves"]


@pytest.mark.parametrize("drift", ["limit", "end", "blocked account"])
def test_redis_terms_other_than_the_databases_are_reported(make_sale, redis_client, drift):
    sale = make_sale(quantity=6, limit=2, shards=2)
    inactive = shopper_of(1, 2)
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    redis_client.sadd(redis_sales.SaleKeys(sale.pk, 1, 2).blocked, inactive.pk)
    assert reported(sale) == []

    shard = redis_sales.SaleKeys(sale.pk, 1, 2)
    if drift == "limit":
        redis_client.hset(shard.meta, "limit", 3)
    elif drift == "end":
        redis_client.hincrby(shard.meta, "ends_at", 60_000_000)
    else:
        redis_client.srem(shard.blocked, inactive.pk)
        redis_client.sadd(shard.blocked, UserFactory().pk)

    assert reported(sale) == ["terms_agreement"]
