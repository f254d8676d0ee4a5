"""The keys of a sale in Redis. Every key of one stock shard carries the shard's hash tag
(`fs:{42}:...`), so the scripts, which touch several keys at once, run unchanged on Redis
Cluster; each shopper's purchases go to one home shard.
"""

import functools
import hashlib
from dataclasses import dataclass

from redis.crc import key_slot

from limits.buckets import Limit

# Redis Cluster's slots, and the space a sale's stock shards are spread over.
SLOTS = 16384


def home_shard(user_id: int, shards: int) -> int:
    """The stock shard that admits every purchase of this shopper in a sale of `shards` shards:
    one shard holds the shopper's tally and Idempotency-Keys, so the per-user limit and the
    replayed answers stay exact."""
    return user_id % shards


@functools.lru_cache(maxsize=4096)
def shard_tag(sale_id: int, shard: int, shards: int) -> str:
    """The hash tag of one stock shard of a sale.

    A sale of one shard: its id, `fs:{42}:...`. Of several: the first `<id>:<shard>/<shards>:<n>`
    (n = 0, 1, ...) whose slot lies in the shard's own N-th of the slot space. A cluster whose
    primaries hold equal runs of slots (what `redis-cli --cluster create` makes) then has each
    shard of a sale of N shards, N primaries, on a primary of its own; on any other layout the
    shards still spread over the slot space.
    """
    if shards == 1:
        return str(sale_id)
    low, high = shard * SLOTS // shards, (shard + 1) * SLOTS // shards
    n = 0
    while not low <= key_slot(f"{sale_id}:{shard}/{shards}:{n}".encode()) < high:
        n += 1
    return f"{sale_id}:{shard}/{shards}:{n}"


class SaleNotLoaded(Exception):
    """Redis does not hold the sale: ask the database."""


@dataclass(frozen=True)
class SaleKeys:
    """The keys of one stock shard of a sale (of its only shard, by default)."""

    sale_id: int
    shard: int = 0
    shards: int = 1

    @classmethod
    def from_tag(cls, tag: str) -> "SaleKeys":
        sale_id, _, rest = tag.partition(":")
        if not rest:
            return cls(int(sale_id))
        shard, shards = rest.split(":")[0].split("/")
        return cls(int(sale_id), int(shard), int(shards))

    @classmethod
    def all_of(cls, sale_id: int, shards: int) -> list["SaleKeys"]:
        return [cls.of(sale_id, shard, shards) for shard in range(shards)]

    @classmethod
    @functools.lru_cache(maxsize=4096)
    def of(cls, sale_id: int, shard: int = 0, shards: int = 1) -> "SaleKeys":
        """The keys of a shard, made once per process: a purchase asks for them every time."""
        return cls(sale_id, shard, shards)

    @functools.cached_property
    def admission(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """admit.lua's keys of the shard, before and after the request's own Idempotency-Key."""
        return (
            (self.meta, self.remaining, self.buyers, self.stream, self.pending, self.admitted),
            (self.drain, self.stats, self.blocked, self.answered, self.gated),
        )

    @functools.cached_property
    def _prefix(self) -> str:
        return f"fs:{{{shard_tag(self.sale_id, self.shard, self.shards)}}}:"

    def _key(self, suffix: str) -> str:
        return self._prefix + suffix

    @property
    def meta(self) -> str:
        return self._key("meta")

    @property
    def remaining(self) -> str:
        return self._key("remaining")

    @property
    def buyers(self) -> str:
        return self._key("buyers")

    @property
    def stream(self) -> str:
        return self._key("stream")

    @property
    def pending(self) -> str:
        return self._key("pending")

    @property
    def admitted(self) -> str:
        return self._key("admitted")

    @property
    def blocked(self) -> str:
        return self._key("blocked")

    @property
    def answered(self) -> str:
        return self._key("answered")

    @property
    def gated(self) -> str:
        return self._key("gated")

    @property
    def drain(self) -> str:
        return self._key("drain")

    @property
    def stats(self) -> str:
        return self._key("stats")

    @property
    def queue(self) -> list[str]:
        """The waiting room's keys (kept in the sale's first shard): see queue_join.lua."""
        return [self._key(f"queue:{part}") for part in ("draw", "arrivals", "late", "count")]

    def idempotency(self, user_id: int, key: str) -> str:
        return self._key(f"idem:{user_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}")

    def lock(self, job: str) -> str:
        return self._key(f"lock:{job}")

    def rate_limit(self, limit: Limit) -> str:
        """A purchase rate limit's bucket, in this sale's slot: the admission script takes it."""
        return self._key(f"rl:{limit.key}")


MOVE_LOCK_JOB = "rebalance"


def move_keys(sale_id: int) -> tuple[str, str, str]:
    """The move lock's fencing token, its holder's mark of units in transit, and the count of
    transits begun (all in the lock's slot)."""
    keys = SaleKeys(sale_id)
    return (
        keys.lock(f"{MOVE_LOCK_JOB}:fence"),
        keys.lock(f"{MOVE_LOCK_JOB}:transit"),
        keys.lock(f"{MOVE_LOCK_JOB}:transits"),
    )
