"""The Lua scripts (in inventory/lua/, loaded once and called by SHA: redis-py reloads them on
NOSCRIPT) and Redis's clock, the one clock admission, waves and windows go by.
"""

import functools
from datetime import UTC, datetime
from pathlib import Path

from core.redis import redis_client, run_lua

LUA_DIR = Path(__file__).parent.parent / "lua"


@functools.cache
def script_path(name: str) -> Path:
    return LUA_DIR / f"{name}.lua"


def run_script(name: str, keys: list[str], args: list) -> list:
    return run_lua(script_path(name), keys, args)


def redis_now() -> datetime:
    """Redis's clock: the one clock that admission, waves and windows go by."""
    seconds, micros = redis_client().time()
    return datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
