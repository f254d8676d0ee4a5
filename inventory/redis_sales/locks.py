"""Locks of one sale's jobs in Redis, fenced where a stalled holder could do harm."""

import contextlib
import secrets
import time
from collections.abc import Iterator

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys
from inventory.redis_sales.scripts import run_script


class RedisLock:
    """`SET key token NX PX ttl`; released or extended only by its owner. With a `fence_key`, the
    holder also gets a fencing token (`fence`) that only grows from holder to holder
    (lock_acquire_fenced.lua): a lock's expiry alone fences nothing, a token does."""

    def __init__(self, key: str, ttl_ms: int, fence_key: str | None = None):
        self.key, self.ttl_ms, self.token = key, ttl_ms, secrets.token_hex(16)
        self.fence_key, self.fence = fence_key, 0
        self.acquired = False

    def acquire(self) -> bool:
        if self.fence_key is None:
            self.acquired = bool(redis_client().set(self.key, self.token, nx=True, px=self.ttl_ms))
        else:
            self.fence = int(run_script("lock_acquire_fenced", [self.key, self.fence_key], [self.token, self.ttl_ms]))
            self.acquired = self.fence > 0
        return self.acquired

    def extend(self) -> bool:
        return bool(run_script("lock_extend", [self.key], [self.token, self.ttl_ms]))

    def release(self) -> None:
        if self.acquired:
            run_script("lock_release", [self.key], [self.token])
            self.acquired = False


@contextlib.contextmanager
def sale_lock(
    sale_id: int, job: str, ttl_ms: int = 30_000, wait_ms: int = 0, fenced: bool = False
) -> Iterator[RedisLock | None]:
    """Yield the lock for this sale's job, or None if someone else holds it: skip, don't wait
    (or not more than `wait_ms`, for a job that holds it for moments only). `fenced`: the lock
    carries a fencing token (see RedisLock)."""
    keys = SaleKeys(sale_id)
    lock = RedisLock(keys.lock(job), ttl_ms, fence_key=keys.lock(f"{job}:fence") if fenced else None)
    deadline = time.monotonic() + wait_ms / 1000
    while not lock.acquire():
        if time.monotonic() >= deadline:
            yield None
            return
        time.sleep(0.002)
    try:
        yield lock
    finally:
        lock.release()
