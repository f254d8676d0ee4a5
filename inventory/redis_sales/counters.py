"""A sale's counters in Redis: loading them from the database, reading each shard, repairing
them (reconcile.lua), edits of its terms, and forgetting a closed sale.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys, home_shard, move_keys
from inventory.redis_sales.scripts import as_text, micros, run_script
from inventory.redis_sales.stream import WRITER_GROUP, GiveBack, StreamReservation


@dataclass(frozen=True)
class SaleCounters:
    """Where a sale's Redis counters start from, read from the database."""

    remaining: int
    held_by_user: dict[int, int]
    admitted: dict[str, int]  # reservation id -> units, of every reservation the database has
    blocked_users: list[int]
    version: int  # the sale's version these counters reflect (see edit_sale.lua)
    allotment: int  # the units of the sale this shard may sell: its remaining and what it sold
    fence: int = 0  # the token of the move lock they were computed under (see shard_fence.lua)
    answered_users: Sequence[int] = ()  # the shoppers of those reservations (see answered.lua)

    def as_json(self) -> str:
        return json.dumps(
            {
                "remaining": self.remaining,
                "allotment": self.allotment,
                "held": {str(user): units for user, units in self.held_by_user.items()},
                "admitted": self.admitted,
                "blocked": [str(user) for user in self.blocked_users],
                "answered": [str(user) for user in self.answered_users],
                "version": self.version,
                "fence": self.fence,
            }
        )


def sale_load(
    *,
    sale_id: int,
    starts_at: datetime,
    ends_at: datetime,
    per_user_limit: int,
    status: str,
    counters: SaleCounters | None,
    version: int,
    shard: int = 0,
    shards: int = 1,
    waves: Sequence[tuple[datetime, int]] = (),
) -> int | None:
    """Refresh a shard's terms (its window, limit, status and waves, of the sale's `version`),
    loading its counters if Redis has none (a closed sale stays closed). Returns the remaining
    units, or None when the shard is not loaded and no `counters` were given: read them and
    call again."""
    keys = SaleKeys(sale_id, shard, shards)
    _, remaining = run_script(
        "load_sale",
        [keys.meta, keys.remaining, keys.buyers, keys.stream, keys.admitted, keys.blocked, keys.answered],
        [
            micros(starts_at),
            micros(ends_at),
            per_user_limit,
            status,
            WRITER_GROUP,
            counters.as_json() if counters else "",
            ",".join(f"{micros(at)}:{units}" for at, units in waves),
            version,
        ],
    )
    return None if int(remaining) < 0 else int(remaining)


@dataclass(frozen=True)
class Reconciliation:
    loaded: bool
    remaining_before: int
    remaining_expected: int
    in_flight: int
    buyers_repaired: int
    terms_repaired: bool

    @property
    def drifted(self) -> bool:
        return self.remaining_before != self.remaining_expected or self.buyers_repaired > 0 or self.terms_repaired

    @classmethod
    def of_shards(cls, parts: "list[Reconciliation]") -> "Reconciliation":
        """The sale's reconciliation, from its shards'."""
        return cls(
            loaded=all(part.loaded for part in parts),
            remaining_before=sum(part.remaining_before for part in parts),
            remaining_expected=sum(part.remaining_expected for part in parts),
            in_flight=sum(part.in_flight for part in parts),
            buyers_repaired=sum(part.buyers_repaired for part in parts),
            terms_repaired=any(part.terms_repaired for part in parts),
        )


def units_in_flight(entries: list["StreamReservation"], settled: dict[str, GiveBack]) -> int:
    """Units a shard's stream holds for reservations on their way to the database: all of an
    unsettled one's, what Redis has yet to give back of a settled one's. reconcile.lua counts
    them the same way, atomically with its repair."""
    unsettled = GiveBack(units=True, tally=True)
    return sum(settled.get(entry.reservation_id, unsettled).amounts(entry.quantity)[0] for entry in entries)


def sale_reconcile_counters(
    *,
    sale_id: int,
    quantity: int,
    units_sold: int,
    held_by_user: dict[int, int],
    settled: dict[str, GiveBack],
    ends_at: datetime,
    per_user_limit: int,
    version: int,
    blocked_users: list[int],
    shard: int = 0,
    shards: int = 1,
) -> Reconciliation:
    """Repair a shard's counters and the terms toward the database. `quantity`: the units the
    shard may sell (its allotment); `units_sold`: what its shoppers hold in the database;
    `settled`: the reservations in the stream that the database has settled, with what Redis
    has yet to give back for each; `blocked_users`: the shard's shoppers whose accounts are
    inactive."""
    keys = SaleKeys(sale_id, shard, shards)
    result = run_script(
        "reconcile",
        [keys.meta, keys.remaining, keys.buyers, keys.stream, keys.blocked],
        [
            units_sold,
            quantity,
            json.dumps({str(user): units for user, units in held_by_user.items()}),
            json.dumps({rid: [int(back.units), int(back.tally), back.less] for rid, back in settled.items()}),
            micros(ends_at),
            per_user_limit,
            version,
            json.dumps(blocked_users),
        ],
    )
    return Reconciliation(bool(result[0]), *(int(value) for value in result[1:5]), bool(result[5]))


@dataclass(frozen=True)
class ShardState:
    remaining: int
    allotment: int
    on_offer: int  # remaining, less the units of the shard's waves still to come
    held_back: int  # the units of the shard's waves still to come, by Redis TIME


def sale_shard_states(sale_id: int, shards: int = 1, fence: int | None = None) -> list[ShardState | None]:
    """Each shard's remaining units, allotment and units on offer now (by Redis TIME), None for
    a shard Redis has not loaded; a round trip per shard (the shards of a sale live on different
    primaries). With `fence`, the token of the caller's move lock, each shard's fence is raised
    to it as it is read (shard_fence.lua), so no stale mover changes it afterwards."""
    client, states = redis_client(), []
    seconds, micros = client.time()
    now = seconds * 1_000_000 + micros
    for keys in SaleKeys.all_of(sale_id, shards):
        if fence is None:
            remaining, (allotment, waves) = client.get(keys.remaining), client.hmget(keys.meta, "allotment", "waves")
        else:
            remaining, allotment, waves = run_script("shard_fence", [keys.meta, keys.remaining], [fence]) or (None,) * 3
        if remaining is None:
            states.append(None)
            continue
        held_back = sum(int(units) for opens, units in waves_parse(waves) if now < int(opens))
        states.append(ShardState(int(remaining), int(allotment or 0), int(remaining) - held_back, held_back))
    return states


@dataclass(frozen=True)
class ShardTerms:
    """The terms a shard's admissions go by: per-user limit, end (microseconds since the epoch),
    the accounts refused."""

    limit: int | None
    ends_at: int | None
    blocked: frozenset[int]

    @classmethod
    def of(cls, *, limit: int, ends_at: datetime, blocked: set[int]) -> "ShardTerms":
        return cls(limit, micros(ends_at), frozenset(blocked))

    def as_dict(self) -> dict:
        return {"limit": self.limit, "ends_at": self.ends_at, "blocked": sorted(self.blocked)}


def sale_shard_terms(sale_id: int, shard: int = 0, shards: int = 1) -> ShardTerms:
    keys = SaleKeys(sale_id, shard, shards)
    limit, ends_at = redis_client().hmget(keys.meta, "limit", "ends_at")
    return ShardTerms(
        int(limit) if limit is not None else None,
        int(ends_at) if ends_at is not None else None,
        frozenset(int(user) for user in redis_client().smembers(keys.blocked)),
    )


def waves_parse(text: bytes | None) -> list[tuple[str, str]]:
    """A shard's waves as load_sale.lua stores them: [(opens at, units), ...]."""
    return [tuple(wave.split(":")) for wave in as_text(text).split(",")] if text else []


def sale_remaining(sale_id: int, shards: int = 1) -> int | None:
    """Units on offer in every shard together (one GET per shard); None when Redis has none of
    the sale's shards."""
    client = redis_client()
    counts = [client.get(keys.remaining) for keys in SaleKeys.all_of(sale_id, shards)]
    loaded = [int(count) for count in counts if count is not None]
    return sum(loaded) if loaded else None


def sale_units_held(sale_id: int, user_id: int, shards: int = 1) -> int | None:
    """The units a shopper holds in the sale (their home shard keeps the count); None when Redis
    does not hold the sale."""
    keys = SaleKeys.of(sale_id, home_shard(user_id, shards), shards)
    held, loaded = redis_client().pipeline(transaction=False).hget(keys.buyers, user_id).exists(keys.meta).execute()
    return int(held or 0) if loaded else None


def sale_is_loaded(sale_id: int, shards: int = 1) -> bool:
    """Whether Redis holds every shard of the sale."""
    return all(sale_shard_states(sale_id, shards))


def sale_forget(sale_id: int, shards: int = 1) -> None:
    """Drop every key of a closed sale whose reservations are all written."""
    client = redis_client()
    for keys in SaleKeys.all_of(sale_id, shards):
        client.delete(
            keys.meta, keys.remaining, keys.buyers, keys.drain, keys.stream, keys.pending, keys.admitted,
            keys.answered, keys.blocked, keys.stats, *keys.queue,
        )  # fmt: skip
    client.delete(*move_keys(sale_id))


def sale_edit(
    *,
    sale_id: int,
    step: str,
    ends_at: datetime,
    per_user_limit: int,
    delta: int,
    version: int,
    shard: int = 0,
    shards: int = 1,
) -> int:
    """One step of an edit of a loaded sale's terms in one shard, atomically with admissions:
    `check`, `narrow` or `restore` before the edit's commit, `widen` after it (see edit_sale.lua),
    with `delta` units more (or fewer) on offer and the sale's `version` the terms are of.
    Returns 1 (applied), 0 (not loaded), 2 (Redis reflects the version already), -1 (too few
    left to take off), -2 (a shopper holds more than the new limit)."""
    keys = SaleKeys(sale_id, shard, shards)
    args = [micros(ends_at), per_user_limit, delta, step, version]
    return int(run_script("edit_sale", [keys.meta, keys.remaining, keys.buyers], args))


def sale_set_status(sale_id: int, status: str, shards: int = 1) -> None:
    """Admission reads the status: a closed sale admits no one, whatever its window."""
    for keys in SaleKeys.all_of(sale_id, shards):
        redis_client().hset(keys.meta, "status", status)


def sales_block_user(*, sales: dict[int, int], user_id: int, blocked: bool) -> None:
    """Refuse (or allow again) the user's purchases in these sales (id -> shards), from the
    next attempt on."""
    pipe = redis_client().pipeline(transaction=False)
    for sale_id, shards in sales.items():
        key = SaleKeys(sale_id, home_shard(user_id, shards), shards).blocked
        if blocked:
            pipe.sadd(key, user_id)
        else:
            pipe.srem(key, user_id)
    pipe.execute()
