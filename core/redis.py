"""The shop's Redis client and Lua script loading, shared by every Redis-backed module."""

from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import redis
from django.conf import settings
from django_redis import get_redis_connection
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, SlotNotCoveredError

from core.metrics import REDIS_SCRIPT_SECONDS
from core.redis_transport import redis_transport

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def redis_client() -> redis.Redis | RedisCluster:
    """The one Redis of the shop, or with REDIS_CLUSTER the cluster that REDIS_URL names a node of."""
    if settings.REDIS_CLUSTER:
        return _cluster_client(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)
    return get_redis_connection("default")


# What redis-py raises, outside RedisError, when it cannot reach the cluster or map its slots.
CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")


def _as_connection_error(error: RedisClusterException) -> Exception:
    if isinstance(error, SlotNotCoveredError) or str(error).startswith(CLUSTER_UNREACHABLE):
        return redis.ConnectionError(str(error))
    return error


class ShopRedisCluster(RedisCluster):
    """A cluster client whose "cannot reach the cluster" errors are ConnectionErrors, as a plain
    Redis's are: every caller's `except redis.RedisError` (503 answers, the limiter's fallback,
    the writer's retries) then covers a cluster too. Other cluster errors (a command whose keys
    span slots) stay what they are: bugs, not outages."""

    def execute_command(self, *args, **kwargs):
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as error:
            raise _as_connection_error(error) from error


@cache
def _cluster_client(url: str, socket_timeout: float) -> RedisCluster:
    # One per process: it keeps the cluster's slot map and a connection pool per node, and
    # follows a failover by asking the cluster again when a node is gone or answers MOVED.
    # REDIS_URL may name several nodes, comma-separated: the process starts from any that is up
    # (a process that found none raises, caches nothing, and tries again on its next call).
    first, *others = url.split(",")
    try:
        return ShopRedisCluster(
            url=first,
            startup_nodes=[ClusterNode(urlparse(other).hostname, urlparse(other).port or 6379) for other in others],
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
    except RedisClusterException as error:
        raise _as_connection_error(error) from error


INCLUDE = "--!include "


def lua_source(path: Path) -> str:
    """The script's text, with each `--!include <path from the project's root>` line replaced by
    that file: scripts share functions this way (Redis has no includes of its own)."""
    lines = path.read_text().splitlines()
    return "\n".join(
        lua_source(PROJECT_ROOT / line.removeprefix(INCLUDE).strip()) if line.startswith(INCLUDE) else line
        for line in lines
    )


@cache
def lua_script(path: Path) -> redis.commands.core.Script:
    """A script loaded once and called by SHA (redis-py reloads it on NOSCRIPT).

    Bound to no client for good: each call passes the current one, since settings may change it.
    """
    return redis.Redis().register_script(lua_source(path))


@cache
def _script_seconds(path: Path):
    return REDIS_SCRIPT_SECONDS.labels(path.stem)


def run_lua(path: Path, keys: list[str], args: list):
    with _script_seconds(path).time():
        script = lua_script(path)
        transport = redis_transport()
        if transport is None:
            return script(keys=keys, args=args, client=redis_client())
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return transport.execute(call)[0]
        except NoScriptError:  # Redis restarted, or flushed its scripts: load it again.
            transport.execute(("SCRIPT", "LOAD", script.script))
            return transport.execute(call)[0]


def redis_round_trip(*commands: tuple) -> list:
    """Each command's reply, in one round trip: through the purchase's transport to a standalone
    Redis (core/redis_transport.py), else a pipeline of redis-py's client."""
    transport = redis_transport()
    if transport is not None:
        return transport.execute(*commands)
    pipe = redis_client().pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute()
