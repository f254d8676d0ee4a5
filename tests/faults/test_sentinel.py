"""Redis through Sentinel (REDIS_SENTINELS): a real primary, its replica and a sentinel, from the
redis-server the project installs. The shop finds the primary through the sentinel, sells, and
after the primary dies and the sentinel promotes the replica, sells again on it."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection
from redis.sentinel import Sentinel

from core import redis as shop_redis
from core.breaker import redis_breaker
from core.health import health_report
from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import Order
from orders.writer import order_writer_drain
from scripts.devstack import free_port, redis_program
from shop.models import FlashSale
from shop.services import flash_sale_reconcile
from tests.conftest import client_for, purchase
from tests.factories import UserFactory
from tests.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MASTER = "shop-primary"


class Servers:
    def __init__(self, folder: Path):
        self.folder, self.processes = folder, {}
        self.primary, self.replica, self.sentinel = free_port(), free_port(), free_port()

    def start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the server writes to it until stopped
        server = redis_program("redis-server")
        self.processes[name] = subprocess.Popen([server, *args], stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        self.processes[name].kill()
        self.processes[name].wait()

    def knows_the_replica(self) -> bool:
        """The sentinel has seen the replica (it asks the primary every 10 s): only then can it
        promote it."""
        try:
            replicas = Sentinel([("127.0.0.1", self.sentinel)], socket_timeout=1).discover_slaves(MASTER)
        except redis.RedisError:
            return False
        return ("127.0.0.1", self.replica) in replicas

    def primary_port(self) -> int | None:
        """The port of the primary the sentinel names now, or None while it names none."""
        try:
            return Sentinel([("127.0.0.1", self.sentinel)], socket_timeout=1).discover_master(MASTER)[1]
        except redis.RedisError:
            return None


def _replicating(port: int) -> bool:
    try:
        return redis.Redis(port=port).info("replication")["master_link_status"] == "up"
    except (redis.RedisError, KeyError):
        return False


@pytest.fixture
def sentinel_servers(tmp_path) -> Iterator[Servers]:
    servers = Servers(tmp_path)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    try:
        servers.start("primary", "--port", str(servers.primary), *common)
        servers.start("replica", "--port", str(servers.replica), "--replicaof", "127.0.0.1", str(servers.primary),
                      *common)  # fmt: skip
        config = tmp_path / "sentinel.conf"
        config.write_text(
            f"port {servers.sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {servers.primary} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n"
        )
        servers.start("sentinel", str(config), "--sentinel")
        wait_for(lambda: _replicating(servers.replica), timeout=30, what="the replica to follow the primary")
        wait_for(servers.knows_the_replica, timeout=30, what="the sentinel to see the replica")
        wait_for(lambda: servers.primary_port() == servers.primary, timeout=30, what="the sentinel to know the primary")
        yield servers
    finally:
        for name in list(servers.processes):
            servers.kill(name)


@pytest.fixture
def through_sentinel(sentinel_servers, settings):
    settings.REDIS_SENTINELS = [("127.0.0.1", sentinel_servers.sentinel)]
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://{MASTER}/0",
            "OPTIONS": {
                **settings.CACHES["default"]["OPTIONS"],
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": settings.REDIS_SENTINELS,
            },
        }
    }
    redis_breaker.reset()
    return sentinel_servers


def sell_one(sale) -> int:
    response = purchase(client_for(UserFactory()), sale, key="k")
    if response.status_code == 202:
        order_writer_drain(sale_id=sale.pk, consumer="test")
    return response.status_code


def test_the_shop_sells_through_sentinel_and_again_after_it_promotes_the_replica(through_sentinel, make_sale):
    servers = through_sentinel
    sale = make_sale(quantity=10, limit=1)
    assert shop_redis.redis_client().connection_pool.get_master_address() == ("127.0.0.1", servers.primary)
    assert health_report()["redis"] == "ok"
    # Celery's broker, a Redis too, is found through the sentinel as the settings name it
    # (tests/config/test_settings.py checks that REDIS_SENTINELS gives this URL and options).
    sentinel_url = f"sentinel://127.0.0.1:{servers.sentinel}"
    with Connection(sentinel_url, transport_options={"master_name": MASTER}) as broker:
        broker.ensure_connection(max_retries=1, timeout=5)
        broker.SimpleQueue("sentinel-check").put({"ok": 1})
    assert redis.Redis(port=servers.primary).llen("sentinel-check") == 1
    assert [sell_one(sale) for _ in range(3)] == [202] * 3
    assert redis.Redis(port=servers.primary).exists(redis_sales.SaleKeys(sale.pk).remaining)

    wait_for(
        lambda: redis.Redis(port=servers.primary).execute_command("WAIT", 1, 1000) == 1, timeout=10, what="replication"
    )
    servers.kill("primary")
    wait_for(lambda: servers.primary_port() == servers.replica, timeout=60, what="the sentinel to promote the replica")

    def sells_again() -> bool:
        redis_breaker.reset()
        return sell_one(sale) == 202

    wait_for(sells_again, timeout=30, what="a purchase on the promoted replica")
    assert shop_redis.redis_client().connection_pool.get_master_address() == ("127.0.0.1", servers.replica)
    flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk))
    assert Order.objects.filter(flash_sale=sale).count() == 4
    assert redis_sales.sale_remaining(sale.pk) == 6
    report = check_invariants()
    assert report.ok, report.violations
