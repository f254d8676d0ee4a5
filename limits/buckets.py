"""Token buckets: one per process in memory, one shared in Redis (GCRA, one Lua call)."""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from core.breaker import redis_breaker
from core.redis import run_lua

RATE_LIMIT_LUA = Path(__file__).parent / "lua" / "rate_limit.lua"


@dataclass(frozen=True)
class Limit:
    key: str  # e.g. "purchase:user:42"
    rate: float  # requests per second
    burst: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: Limit
    remaining: int
    reset_seconds: float  # until the bucket is full again
    retry_after: float  # seconds to wait when refused


class LocalBuckets:
    """Token buckets in this process's memory, the oldest forgotten past `capacity` keys."""

    def __init__(self, capacity: int = 50_000):
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._capacity = capacity

    def take(self, limits: list[Limit]) -> Decision:
        now = time.monotonic()
        with self._lock:
            levels = []
            for limit in limits:
                tokens, at = self._buckets.get(limit.key, (float(limit.burst), now))
                levels.append(min(float(limit.burst), tokens + (now - at) * limit.rate))
            short = [(1 - level) / limit.rate for level, limit in zip(levels, limits, strict=True) if level < 1]
            tightest = min(range(len(limits)), key=lambda i: levels[i])
            if short:
                return Decision(False, limits[tightest], 0, 0.0, max(short))
            for level, limit in zip(levels, limits, strict=True):
                self._buckets[limit.key] = (level - 1, now)
                self._buckets.move_to_end(limit.key)
            while len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        limit = limits[tightest]
        remaining = math.floor(levels[tightest] - 1)
        return Decision(True, limit, remaining, (limit.burst - levels[tightest] + 1) / limit.rate, 0.0)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


# The process's buckets: every door of the shop takes from the same ones.
local_buckets = LocalBuckets()


def gcra_arguments(limits: Sequence[Limit]) -> list[int]:
    """The two arguments per limit that gcra.lua takes: emission interval (µs) and burst."""
    return [value for limit in limits for value in (round(1_000_000 / limit.rate), limit.burst)]


def shared_take(limits: list[Limit]) -> Decision:
    """Ask Redis, through the circuit breaker (raises redis errors or CircuitOpen).

    On a Redis Cluster a request's buckets live in different slots and a script may touch one
    slot only: each bucket is taken on its own, in order, up to the first refusal. A refusal may
    then have spent a token of the buckets before it: stricter than one call, never looser.
    """
    if not settings.REDIS_CLUSTER:
        return _take_together(limits)
    taken = []
    for limit in limits:
        decision = _take_together([limit])
        if not decision.allowed:
            return decision
        taken.append(decision)
    return min(taken, key=lambda decision: decision.remaining)


def _take_together(limits: list[Limit]) -> Decision:
    keys = [f"rl:{limit.key}" for limit in limits]
    args = gcra_arguments(limits)
    allowed, index, remaining, reset_us, wait_us = redis_breaker.call(lambda: run_lua(RATE_LIMIT_LUA, keys, args))
    return Decision(bool(allowed), limits[int(index) - 1], int(remaining), int(reset_us) / 1e6, int(wait_us) / 1e6)
