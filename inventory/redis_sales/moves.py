"""Units moved between a sale's stock shards, under the fenced move lock (docs/locking.md)."""

import contextlib
from collections.abc import Iterator

from core.redis import redis_client
from inventory.redis_sales.counters import ShardState, sale_shard_states
from inventory.redis_sales.keys import MOVE_LOCK_JOB, SaleKeys, SaleNotLoaded, move_keys
from inventory.redis_sales.locks import RedisLock, sale_lock
from inventory.redis_sales.scripts import run_script


def sale_shift_units(*, sale_id: int, shard: int, shards: int, units: int, fence: int) -> int | None:
    """Add `units` to a shard's offer and allotment, or with a negative `units` take up to as
    many as it has left, under the move lock whose fencing token is `fence`. Returns the units
    moved (negative when taken; 0 when not loaded), or None when the shard refused the token as
    stale (see shift_units.lua)."""
    keys = SaleKeys(sale_id, shard, shards)
    moved, fenced = run_script("shift_units", [keys.meta, keys.remaining], [units, fence])
    return None if fenced else int(moved)


# How long a mover may hold a sale's move lock: a few round trips, and the lock outlives a mover
# that died (or lost its Redis node) holding it by this long at most.
MOVE_LOCK_TTL_MS = 2_000


# How long reconciliation and a rebuild wait for the move lock: the longest a dead mover's lives.
MOVE_LOCK_WAIT_MS = MOVE_LOCK_TTL_MS + 500


def sale_move_lock(sale_id: int, *, wait_ms: int) -> "contextlib.AbstractContextManager[RedisLock | None]":
    """The lock under which units move between a sale's stock shards, fenced (see sale_borrow)."""
    return sale_lock(sale_id, MOVE_LOCK_JOB, ttl_ms=MOVE_LOCK_TTL_MS, wait_ms=wait_ms, fenced=True)


@contextlib.contextmanager
def sale_units_in_transit(sale_id: int, lock: "RedisLock") -> Iterator[None]:
    """Mark, for the move lock's holder, a stretch in which units of the sale may be in no shard
    (taken from one, not yet given to another): a look at the shards outside the lock cannot
    then tell sold out (see sale_borrow). The mark is set before the count is raised, so that a
    look that began before the mark sees the count change; it lives no longer than the lock."""
    _, mark, count = move_keys(sale_id)
    client = redis_client()
    client.set(mark, lock.fence, px=MOVE_LOCK_TTL_MS)
    client.incr(count)
    try:
        yield
    finally:
        run_script("lock_release", [mark], [lock.fence])


def _transits_seen(sale_id: int) -> tuple[bytes | None, bytes | None]:
    """The mark of units in transit (None when none are) and the count of transits begun."""
    _, mark, count = move_keys(sale_id)
    return tuple(redis_client().mget(mark, count))


def _shards_loaded(sale_id: int, shards: int) -> list[ShardState]:
    states = sale_shard_states(sale_id, shards)
    if not all(states):
        raise SaleNotLoaded()
    return states


def _donor(states: list[ShardState], shard: int) -> int | None:
    """The shard with the most units on offer, other than `shard`, if any has one."""
    most, donor = max(
        ((state.on_offer, index) for index, state in enumerate(states) if index != shard), default=(0, None)
    )
    return donor if most > 0 else None


def sale_borrow(*, sale_id: int, shard: int, shards: int, units: int) -> int | None:
    """Move units from the sale's other shards to `shard`, which has fewer than `units` left:
    from the shard with the most left, half the difference between the two (at least `units`),
    so that a sale's shards run dry together and few moves are made. Only units on offer move:
    those of waves still to come stay in their shard until they open. Returns the units `shard`
    has on offer now (fewer than `units`: the other shards have none to give), or None when the
    move lock could not be had in time, or was lost before the move was done. Raises
    SaleNotLoaded when a shard is missing from Redis: what it holds is not known.

    Moves of one sale are serialised by a short lock, which reconciliation and the rebuild of a
    lost shard take too, and fenced by its token: a taken unit is given within the same lock, and
    a mover that dies or stalls between the two gives nothing once another has taken the lock
    (its take stands), which leaves the sale's allotments short; the next reconciliation gives
    the units back to shard 0. A mover that cannot get the lock at once waits a moment: another
    is moving units, most likely here.
    """
    # A look first, without the lock: once a sale is sold out, the crowd's last attempts learn it
    # here, instead of queueing for the lock one by one. The look reads one shard after another,
    # so it may miss units in transit: it tells sold out only if no transit overlapped it.
    transits = _transits_seen(sale_id)
    looked = _shards_loaded(sale_id, shards)
    if looked[shard].on_offer >= units:
        return looked[shard].on_offer
    if _donor(looked, shard) is None and transits[0] is None and _transits_seen(sale_id) == transits:
        return looked[shard].on_offer
    with sale_move_lock(sale_id, wait_ms=200) as lock:
        if lock is None:
            return None
        states = _shards_loaded(sale_id, shards)
        own, donor = states[shard], _donor(states, shard)
        if own.on_offer >= units or donor is None:
            return own.on_offer
        most = states[donor].on_offer
        want = max(units - own.on_offer, (most - own.on_offer + 1) // 2)
        move = {"sale_id": sale_id, "shards": shards, "fence": lock.fence}
        with sale_units_in_transit(sale_id, lock):
            taken = sale_shift_units(**move, shard=donor, units=-want)
            if not taken:
                return None if taken is None else own.on_offer
            given = sale_shift_units(**move, shard=shard, units=-taken)
        return None if given is None else given + own.on_offer
