"""A circuit breaker for Redis: after repeated failures, stop calling it for a while.

While open, callers get CircuitOpen at once instead of waiting for socket timeouts, and
choose their fallback (a 503, the database-only purchase path, the per-process bucket). After
REDIS_BREAKER_RESET_SECONDS one probe call goes through: success closes the breaker, failure
opens it again. State is per process, which is all it needs to be.
"""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from django.conf import settings

T = TypeVar("T")


class CircuitOpen(redis.ConnectionError):
    """Redis is presumed down; the call was not made."""


class CircuitBreaker:
    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None and not self._probe_due()

    def _probe_due(self) -> bool:
        return (
            self._opened_at is not None and time.monotonic() - self._opened_at >= settings.REDIS_BREAKER_RESET_SECONDS
        )

    def call(self, function: Callable[[], T]) -> T:
        """Call `function` unless the breaker is open. Only Redis's own errors count against
        it: anything else the function raises (an unknown sale, a busy lock, a database
        error) says nothing about Redis, so it leaves the state as it was and frees the probe."""
        with self._lock:
            if self._opened_at is not None:
                if not self._probe_due() or self._probing:
                    raise CircuitOpen(f"{self.name} circuit is open")
                self._probing = True
        healthy = False
        try:
            result = function()
            healthy = True
        except redis.RedisError:
            with self._lock:
                self._failures += 1
                if self._opened_at is not None or self._failures >= settings.REDIS_BREAKER_FAILURES:
                    self._opened_at = time.monotonic()
            raise
        finally:
            with self._lock:
                self._probing = False
                if healthy:
                    self._failures, self._opened_at = 0, None
        return result

    def reset(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False


redis_breaker = CircuitBreaker("redis")
