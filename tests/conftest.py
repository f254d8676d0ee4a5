from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from config.celery import app as celery_app
from core.breaker import redis_breaker
from core.health import check_broker
from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate
from inventory.services import stock_receive
from limits.buckets import local_buckets
from orders.blocks import block_list
from purchase.passes import spent_passes
from purchase.terms import sale_terms_forget
from shop.models import FlashSale
from shop.pages import crowd_pages_forget
from shop.selectors import flash_sale_states_forget
from shop.services import flash_sale_create, flash_sale_preheat
from tests.factories import StaffFactory, StockFactory, UserFactory


@pytest.fixture(autouse=True)
def fresh_process_state():
    """Each test starts with no sale remembered as sold out or in any state, a closed breaker
    and no cached broker health in this process."""
    sale_gate.clear()
    block_list.forget()
    spent_passes.clear()
    flash_sale_states_forget()
    crowd_pages_forget()
    sale_terms_forget()
    local_buckets.clear()
    redis_breaker.reset()
    check_broker.forget()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    """A member of staff with every permission; the roles are tested with their own groups."""
    return StaffFactory(is_superuser=True)


@pytest.fixture
def user_client(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return client_for(staff)


@pytest.fixture
def redis_client():
    """The shop's Redis, emptied before and after the test."""
    client = get_redis_connection("default")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def brokered():
    """Tasks go to the real broker instead of running in-process: for worker processes to
    run, or for a test that drives the order writer itself."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def make_sale(staff, redis_client):
    """A flash sale with its units allocated from fresh stock, preheated into Redis."""

    def make(
        quantity: int = 10,
        limit: int = 1,
        starts_in: float = -60,
        lasts: float = 3600,
        shards: int = 1,
        waves: list[tuple[datetime, int]] = (),
        **terms,
    ) -> FlashSale:
        stock = stock_receive(
            stock=StockFactory(low_stock_threshold=0), quantity=quantity * 2, actor=staff, reason="opening"
        )
        starts_at = timezone.now() + timedelta(seconds=starts_in)
        sale = flash_sale_create(
            sku=stock.sku,
            price=Decimal("9.99"),
            quantity=quantity,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=lasts),
            per_user_limit=limit,
            actor=staff,
            stock_shards=shards,
            waves=waves,
            **terms,
        )
        flash_sale_preheat(sale=sale)
        return sale

    return make


def purchase(client: APIClient, sale: FlashSale, *, key: str | None = None, quantity: int = 1):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": quantity}, format="json", **headers)


def redis_commands(client) -> int:
    """Commands Redis has run since it started, but those that read this count."""
    return sum(stats["calls"] for name, stats in client.info("commandstats").items() if name != "cmdstat_info")


def move_units(sale: FlashSale, *, shard: int, units: int) -> int | None:
    """Add units to one stock shard's offer (or take them off it), as a mover does one half of a
    move, under the sale's move lock (see redis_sales.sale_borrow)."""
    with redis_sales.sale_move_lock(sale.pk, wait_ms=redis_sales.MOVE_LOCK_WAIT_MS) as lock:
        return redis_sales.sale_shift_units(
            sale_id=sale.pk, shard=shard, shards=sale.stock_shards, units=units, fence=lock.fence
        )


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def bearer_client(user) -> APIClient:
    """Authenticated as a real client is, with a JWT (the middleware and stateless auth read it)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


@pytest.fixture
def admissions(monkeypatch) -> list:
    """The admission script's calls from this process (each sale's meta key), counted on their
    way to Redis."""
    calls = []
    run = redis_sales.admission.run_script

    def counted(name, keys, args):
        if name == "admit":
            calls.append(keys[0])
        return run(name, keys, args)

    monkeypatch.setattr(redis_sales.admission, "run_script", counted)
    return calls
