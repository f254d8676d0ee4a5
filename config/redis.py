"""The shop's Redis client and Lua script loading, shared by every Redis-backed module."""

from functools import cache
from pathlib import Path

import redis
from django_redis import get_redis_connection

from config.metrics import REDIS_SCRIPT_SECONDS


def redis_client() -> redis.Redis:
    return get_redis_connection("default")


@cache
def lua_script(path: Path) -> redis.commands.core.Script:
    """A script loaded once and called by SHA (redis-py reloads it on NOSCRIPT).

    Bound to no client for good: each call passes the current one, since settings may change it.
    """
    return redis.Redis().register_script(path.read_text())


def run_lua(path: Path, keys: list[str], args: list):
    with REDIS_SCRIPT_SECONDS.labels(path.stem).time():
        return lua_script(path)(keys=keys, args=args, client=redis_client())
