"""The shop's Redis client and Lua script loading, shared by every Redis-backed module."""

from functools import cache
from pathlib import Path

import redis
from django_redis import get_redis_connection

from config.metrics import REDIS_SCRIPT_SECONDS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def redis_client() -> redis.Redis:
    return get_redis_connection("default")


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


def run_lua(path: Path, keys: list[str], args: list):
    with REDIS_SCRIPT_SECONDS.labels(path.stem).time():
        return lua_script(path)(keys=keys, args=args, client=redis_client())
