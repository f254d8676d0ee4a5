"""The Redis layer in front of flash-sale stock: keys, Lua scripts and their typed wrappers.

Every key of one sale carries the sale's hash tag (`fs:{42}:...`), so the scripts, which
touch several keys at once, run unchanged on Redis Cluster. Scripts live in `lua/`, are
loaded once and called by SHA (redis-py reloads them on NOSCRIPT).
"""

import contextlib
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from django.conf import settings
from redis.crc import key_slot

from config.redis import redis_client, run_lua
from limits.buckets import Limit, gcra_arguments

LUA_DIR = Path(__file__).parent / "lua"
WRITER_GROUP = "writers"


@functools.cache
def _script_path(name: str) -> Path:
    return LUA_DIR / f"{name}.lua"


def _run(name: str, keys: list[str], args: list) -> list:
    return run_lua(_script_path(name), keys, args)


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
        return [cls(sale_id, shard, shards) for shard in range(shards)]

    def _key(self, suffix: str) -> str:
        return f"fs:{{{shard_tag(self.sale_id, self.shard, self.shards)}}}:{suffix}"

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


def redis_now() -> datetime:
    """Redis's clock: the one clock that admission, waves and windows go by."""
    seconds, micros = redis_client().time()
    return datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Admission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    outcome: str  # accepted, sold_out, limit_exceeded, not_started, ended, blocked, not_loaded, pass_spent ...
    reservation_id: str
    schedule_drain: bool
    replayed: bool
    quantity: int
    retry_after: float = 0.0  # seconds, when rate limited
    next_wave_at: datetime | None = None  # when the units of a sale in waves run out before its next


def reservation_admit(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    reservation_id: str,
    idempotency_key: str,
    request_id: str = "-",
    limits: Sequence[Limit] = (),
    pass_uses: Limit | None = None,
    shard: int = 0,
    shards: int = 1,
    short_is_final: bool = True,
) -> Admission:
    """One round trip: the purchase's rate limits, idempotency, its pass's uses, window, limit,
    remaining, decrement and hand-off, in the shopper's home shard. Without `short_is_final`, a
    shard with too few units left answers `short`, remembered nowhere, so that the caller can
    borrow units from the sale's other shards and ask again."""
    keys, args = admission_call(
        sale_id=sale_id,
        user_id=user_id,
        quantity=quantity,
        reservation_id=reservation_id,
        idempotency_key=idempotency_key,
        request_id=request_id,
        limits=limits,
        pass_uses=pass_uses,
        shard=shard,
        shards=shards,
        short_is_final=short_is_final,
    )
    outcome, rid, schedule, remembered, micros = _run("admit", keys, args)
    outcome = _text(outcome)
    replayed = outcome.startswith("replay:")
    return Admission(
        outcome=outcome.removeprefix("replay:"),
        reservation_id=_text(rid) if outcome != "rate_limited" else "",
        schedule_drain=bool(schedule),
        replayed=replayed,
        quantity=int(remembered),
        retry_after=int(micros) / 1e6 if outcome == "rate_limited" else 0.0,
        next_wave_at=datetime.fromtimestamp(int(micros) / 1e6, tz=UTC) if outcome == "wave" else None,
    )


def admission_call(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    reservation_id: str,
    idempotency_key: str,
    request_id: str,
    limits: Sequence[Limit],
    pass_uses: Limit | None = None,
    shard: int = 0,
    shards: int = 1,
    short_is_final: bool = True,
) -> tuple[list[str], list]:
    """The keys and arguments of admit.lua for one purchase attempt (the capacity benchmark
    drives the script with them directly)."""
    keys = SaleKeys(sale_id, shard, shards)
    return (
        [
            keys.meta,
            keys.remaining,
            keys.buyers,
            keys.stream,
            keys.pending,
            keys.admitted,
            keys.idempotency(user_id, idempotency_key),
            keys.drain,
            keys.stats,
            keys.blocked,
            *(keys.rate_limit(limit) for limit in limits),
            *([keys.rate_limit(pass_uses)] if pass_uses else []),
        ],
        [
            user_id,
            quantity,
            reservation_id,
            settings.IDEMPOTENCY_KEY_TTL,
            settings.ORDER_WRITER_DRAIN_FLAG_MS,
            request_id,
            int(short_is_final),
            len(limits),
            *gcra_arguments([*limits, *([pass_uses] if pass_uses else [])]),
        ],
    )


def admission_replay(
    *, sale_id: int, user_id: int, idempotency_key: str, reservation_id: str, shard: int = 0, shards: int = 1
) -> Admission | None:
    """The first answer to this request, if Redis knows of one: its Idempotency-Key's, or, once
    that has expired (or was never written here: Redis was rebuilt since), an admission of its
    reservation id. One round trip of plain reads, no script. Raises SaleNotLoaded when the
    shard is not loaded: only an admission can tell then."""
    keys = SaleKeys(sale_id, shard, shards)
    pipe = redis_client().pipeline(transaction=False)
    pipe.hmget(keys.idempotency(user_id, idempotency_key), "outcome", "rid", "quantity")
    pipe.hget(keys.admitted, reservation_id)
    pipe.exists(keys.remaining)
    first, admitted, loaded = pipe.execute()
    if first[0] is not None:
        return Admission(_text(first[0]), _text(first[1]), False, True, int(first[2]))
    if admitted is not None:
        return Admission("accepted", reservation_id, False, True, int(admitted))
    if not loaded:
        raise SaleNotLoaded()
    return None


@dataclass(frozen=True)
class GiveBack:
    """What Redis still holds for a reservation that made no order of its own, to give back
    when the writer finishes it: its units (back on offer) and/or its place in the shopper's
    tally, less `less` units that stand for an order the database path wrote for the same
    request (Redis never counted that one)."""

    units: bool
    tally: bool
    less: int = 0

    def amounts(self, quantity: int) -> tuple[int, int]:
        """(units back on offer, units off the tally) for an entry of `quantity` units."""
        return quantity * self.units - self.less, quantity * self.tally - self.less


KEEP = GiveBack(units=False, tally=False)


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

    def as_json(self) -> str:
        return json.dumps(
            {
                "remaining": self.remaining,
                "allotment": self.allotment,
                "held": {str(user): units for user, units in self.held_by_user.items()},
                "admitted": self.admitted,
                "blocked": [str(user) for user in self.blocked_users],
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
    _, remaining = _run(
        "load_sale",
        [keys.meta, keys.remaining, keys.buyers, keys.stream, keys.admitted, keys.blocked],
        [
            _micros(starts_at),
            _micros(ends_at),
            per_user_limit,
            status,
            WRITER_GROUP,
            counters.as_json() if counters else "",
            ",".join(f"{_micros(at)}:{units}" for at, units in waves),
            version,
        ],
    )
    return None if int(remaining) < 0 else int(remaining)


def sale_release_units(*, sale_id: int, user_id: int, quantity: int, shard: int = 0, shards: int = 1) -> int:
    """Put units back on offer and off the user's tally, in the user's home shard. Returns
    remaining, or -1 if not loaded."""
    keys = SaleKeys(sale_id, shard, shards)
    return int(_run("release", [keys.meta, keys.remaining, keys.buyers], [user_id, quantity]))


def sale_taken_by_database(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    reservation_id: str,
    idempotency_key: str,
    shard: int = 0,
    shards: int = 1,
) -> str | None:
    """Take off the offer, and onto the user's tally, the units of an order the database path is
    writing, and remember it as the request's first answer (see taken_by_database.lua). Returns
    None when taken (or Redis had it, or has not the sale), else Redis's refusal: sold_out or
    limit_exceeded."""
    keys = SaleKeys(sale_id, shard, shards)
    args = [user_id, quantity, reservation_id, settings.IDEMPOTENCY_KEY_TTL]
    idempotency = keys.idempotency(user_id, idempotency_key)
    taken = int(_run("taken_by_database", [keys.meta, keys.remaining, keys.buyers, keys.admitted, idempotency], args))
    return {-1: "sold_out", -2: "limit_exceeded"}.get(taken)


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
    return sum(
        entry.quantity * settled.get(entry.reservation_id, unsettled).units
        - settled.get(entry.reservation_id, unsettled).less
        for entry in entries
    )


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
    result = _run(
        "reconcile",
        [keys.meta, keys.remaining, keys.buyers, keys.stream, keys.blocked],
        [
            units_sold,
            quantity,
            json.dumps({str(user): units for user, units in held_by_user.items()}),
            json.dumps({rid: [int(back.units), int(back.tally), back.less] for rid, back in settled.items()}),
            _micros(ends_at),
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
            remaining, allotment, waves = _run("shard_fence", [keys.meta, keys.remaining], [fence]) or (None,) * 3
        if remaining is None:
            states.append(None)
            continue
        held_back = sum(int(units) for opens, units in _waves(waves) if now < int(opens))
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
        return cls(limit, _micros(ends_at), frozenset(blocked))

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


def _waves(text: bytes | None) -> list[tuple[str, str]]:
    """A shard's waves as load_sale.lua stores them: [(opens at, units), ...]."""
    return [tuple(wave.split(":")) for wave in _text(text).split(",")] if text else []


def sale_remaining(sale_id: int, shards: int = 1) -> int | None:
    """Units on offer in every shard together (one GET per shard); None when Redis has none of
    the sale's shards."""
    client = redis_client()
    counts = [client.get(keys.remaining) for keys in SaleKeys.all_of(sale_id, shards)]
    loaded = [int(count) for count in counts if count is not None]
    return sum(loaded) if loaded else None


def sale_is_loaded(sale_id: int, shards: int = 1) -> bool:
    """Whether Redis holds every shard of the sale."""
    return all(sale_shard_states(sale_id, shards))


def sale_forget(sale_id: int, shards: int = 1) -> None:
    """Drop every key of a closed sale whose reservations are all written."""
    client = redis_client()
    for keys in SaleKeys.all_of(sale_id, shards):
        client.delete(
            keys.meta, keys.remaining, keys.buyers, keys.drain, keys.stream, keys.pending, keys.admitted,
            keys.blocked, keys.stats, *keys.queue,
        )  # fmt: skip
    client.delete(*_move_keys(sale_id))


# --- Waiting room ------------------------------------------------------------------------------


# How long a sale's waiting room is kept after the sale's end, at most (see queue_join.lua).
QUEUE_KEPT_AFTER_END_MS = 86_400_000


def queue_join(
    *, sale_id: int, shards: int, user_id: int, draw_number: int, starts_at: datetime, ends_at: datetime | None = None
) -> tuple[int, int] | None:
    """Join the sale's waiting room, or read one's place again: (place, 0 before the start; the
    arrival number); None when the sale is closed or over. Raises SaleNotLoaded when the sale
    is not in Redis and no `ends_at` (the database's) was given."""
    keys = SaleKeys(sale_id, 0, shards)
    args = [user_id, draw_number, _micros(starts_at), _micros(ends_at) if ends_at else "", QUEUE_KEPT_AFTER_END_MS]
    place, arrival = _run("queue_join", [*keys.queue, keys.meta], args)
    if int(place) == -2:
        raise SaleNotLoaded()
    return None if int(place) < 0 else (int(place), int(arrival))


def queue_entrants(*, sale_id: int, shards: int) -> tuple[list[int], list[int]]:
    """The early arrivals of a sale's waiting room: (in the order they came, in the order drawn)."""
    draw, arrivals, _, _ = SaleKeys(sale_id, 0, shards).queue
    client = redis_client()
    drawn = [int(user) for user in client.zrange(draw, 0, -1)]
    came = {int(user): int(number) for user, number in client.hgetall(arrivals).items()}
    return sorted(drawn, key=came.__getitem__), drawn


def sale_shift_units(*, sale_id: int, shard: int, shards: int, units: int, fence: int) -> int | None:
    """Add `units` to a shard's offer and allotment, or with a negative `units` take up to as
    many as it has left, under the move lock whose fencing token is `fence`. Returns the units
    moved (negative when taken; 0 when not loaded), or None when the shard refused the token as
    stale (see shift_units.lua)."""
    keys = SaleKeys(sale_id, shard, shards)
    moved, fenced = _run("shift_units", [keys.meta, keys.remaining], [units, fence])
    return None if fenced else int(moved)


# How long a mover may hold a sale's move lock: a few round trips, and the lock outlives a mover
# that died (or lost its Redis node) holding it by this long at most.
MOVE_LOCK_TTL_MS = 2_000
MOVE_LOCK_JOB = "rebalance"
# How long reconciliation and a rebuild wait for the move lock: the longest a dead mover's lives.
MOVE_LOCK_WAIT_MS = MOVE_LOCK_TTL_MS + 500


def sale_move_lock(sale_id: int, *, wait_ms: int) -> "contextlib.AbstractContextManager[RedisLock | None]":
    """The lock under which units move between a sale's stock shards, fenced (see sale_borrow)."""
    return sale_lock(sale_id, MOVE_LOCK_JOB, ttl_ms=MOVE_LOCK_TTL_MS, wait_ms=wait_ms, fenced=True)


def _move_keys(sale_id: int) -> tuple[str, str, str]:
    """The move lock's fencing token, its holder's mark of units in transit, and the count of
    transits begun (all in the lock's slot)."""
    keys = SaleKeys(sale_id)
    return (
        keys.lock(f"{MOVE_LOCK_JOB}:fence"),
        keys.lock(f"{MOVE_LOCK_JOB}:transit"),
        keys.lock(f"{MOVE_LOCK_JOB}:transits"),
    )


@contextlib.contextmanager
def sale_units_in_transit(sale_id: int, lock: "RedisLock") -> Iterator[None]:
    """Mark, for the move lock's holder, a stretch in which units of the sale may be in no shard
    (taken from one, not yet given to another): a look at the shards outside the lock cannot
    then tell sold out (see sale_borrow). The mark is set before the count is raised, so that a
    look that began before the mark sees the count change; it lives no longer than the lock."""
    _, mark, count = _move_keys(sale_id)
    client = redis_client()
    client.set(mark, lock.fence, px=MOVE_LOCK_TTL_MS)
    client.incr(count)
    try:
        yield
    finally:
        _run("lock_release", [mark], [lock.fence])


def _transits_seen(sale_id: int) -> tuple[bytes | None, bytes | None]:
    """The mark of units in transit (None when none are) and the count of transits begun."""
    _, mark, count = _move_keys(sale_id)
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
    args = [_micros(ends_at), per_user_limit, delta, step, version]
    return int(_run("edit_sale", [keys.meta, keys.remaining, keys.buyers], args))


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


def reservations_still_pending(
    *, sale_id: int, reservation_ids: list[str], shard: int = 0, shards: int = 1
) -> set[str]:
    """Those of the reservation ids Redis still holds as waiting for the writer (one HMGET)."""
    if not reservation_ids:
        return set()
    flags = redis_client().hmget(SaleKeys(sale_id, shard, shards).pending, reservation_ids)
    return {rid for rid, flag in zip(reservation_ids, flags, strict=True) if flag is not None}


def reservation_is_pending(*, sale_id: int, reservation_id: str, shard: int = 0, shards: int = 1) -> bool:
    return bool(redis_client().hexists(SaleKeys(sale_id, shard, shards).pending, reservation_id))


# --- The reservation stream --------------------------------------------------------------------


@dataclass(frozen=True)
class StreamReservation:
    entry_id: str
    reservation_id: str
    user_id: int
    quantity: int
    request_id: str = "-"  # of the purchase that made it, for following it into the writer's log


def _parse_entries(entries) -> list[StreamReservation]:
    parsed = []
    for entry_id, fields in entries:
        if not fields:  # Deleted while pending; nothing to do but acknowledge.
            parsed.append(StreamReservation(_text(entry_id), "", 0, 0))
            continue
        fields = {_text(key): _text(value) for key, value in fields.items()}
        parsed.append(
            StreamReservation(
                _text(entry_id), fields["rid"], int(fields["user"]), int(fields["quantity"]), fields.get("req", "-")
            )
        )
    return parsed


def _ensure_group(client: redis.Redis, keys: SaleKeys) -> None:
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists.
        client.xgroup_create(keys.stream, WRITER_GROUP, id="0", mkstream=True)


def reservations_read(
    *, sale_id: int, consumer: str, count: int, own_pending: bool = False, shard: int = 0, shards: int = 1
) -> list[StreamReservation]:
    """New reservations for this consumer, or with `own_pending` those it read before and has
    not acknowledged (a batch that failed). They stay pending until `reservations_done`."""
    client, keys = redis_client(), SaleKeys(sale_id, shard, shards)
    try:
        response = client.xreadgroup(WRITER_GROUP, consumer, {keys.stream: "0" if own_pending else ">"}, count=count)
    except redis.ResponseError as error:
        if "NOGROUP" not in str(error):
            raise
        _ensure_group(client, keys)
        return []
    return _parse_entries(response[0][1]) if response else []


def reservations_claim_stale(
    *, sale_id: int, consumer: str, min_idle_ms: int, count: int, shard: int = 0, shards: int = 1
) -> list[StreamReservation]:
    """Reservations another consumer read but never acknowledged (it died): now ours."""
    client, keys = redis_client(), SaleKeys(sale_id, shard, shards)
    try:
        response = client.xautoclaim(keys.stream, WRITER_GROUP, consumer, min_idle_time=min_idle_ms, count=count)
    except redis.ResponseError as error:
        if "NOGROUP" not in str(error):
            raise
        return []
    return _parse_entries(response[1])


def reservations_done(
    *,
    sale_id: int,
    entries: list[StreamReservation],
    give_back: dict[str, GiveBack] | None = None,
    shard: int = 0,
    shards: int = 1,
) -> int:
    """After the database has them: acknowledge, drop from the stream and from `pending`, and
    give back, per stream entry id in `give_back`, what Redis holds for a reservation that made
    no order. Each entry is finished once, so a retry gives nothing back twice. Returns how
    many entries this call finished."""
    if not entries:
        return 0
    keys = SaleKeys(sale_id, shard, shards)
    give_back = give_back or {}
    args: list = [WRITER_GROUP]
    for entry in entries:
        units, tally = give_back.get(entry.entry_id, KEEP).amounts(entry.quantity)
        args += [entry.entry_id, entry.reservation_id, entry.user_id, units, tally]
    return int(_run("reservations_done", [keys.remaining, keys.buyers, keys.stream, keys.pending], args))


def reservations_in_stream(sale_id: int, shard: int = 0, shards: int = 1) -> list[StreamReservation]:
    return _parse_entries(redis_client().xrange(SaleKeys(sale_id, shard, shards).stream))


def sales_with_streams() -> list[SaleKeys]:
    """Every sale shard that has a reservation stream in Redis."""
    shards = []
    for key in redis_client().scan_iter(match="fs:{*}:stream", count=1000):
        text = _text(key)
        shards.append(SaleKeys.from_tag(text[text.index("{") + 1 : text.index("}")]))
    return shards


# --- Locks -------------------------------------------------------------------------------------


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
            self.fence = int(_run("lock_acquire_fenced", [self.key, self.fence_key], [self.token, self.ttl_ms]))
            self.acquired = self.fence > 0
        return self.acquired

    def extend(self) -> bool:
        return bool(_run("lock_extend", [self.key], [self.token, self.ttl_ms]))

    def release(self) -> None:
        if self.acquired:
            _run("lock_release", [self.key], [self.token])
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


def reservations_pending(sale_id: int, shard: int = 0, shards: int = 1) -> set[str]:
    """Ids of the reservations Redis holds as waiting for the writer."""
    return {_text(rid) for rid in redis_client().hkeys(SaleKeys(sale_id, shard, shards).pending)}


def _sale_outcome_counts(sale_id: int, shards: int) -> dict[int, dict[str, int]]:
    """Admission answers by minute since the epoch and outcome, as the admission script counts
    them in each shard."""
    counts: dict[int, dict[str, int]] = {}
    for keys in SaleKeys.all_of(sale_id, shards):
        for field, value in redis_client().hgetall(keys.stats).items():
            minute, outcome = _text(field).split(":", 1)
            by_outcome = counts.setdefault(int(minute), {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + int(value)
    return counts


def sale_outcome_totals(sale_id: int, shards: int = 1) -> dict[str, int]:
    """Every admission answer of the sale so far, by outcome."""
    totals: dict[str, int] = {}
    for by_outcome in _sale_outcome_counts(sale_id, shards).values():
        for outcome, count in by_outcome.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return dict(sorted(totals.items()))


def sale_outcomes_by_minute(sale_id: int, minutes: int, shards: int = 1) -> list[tuple[int, dict[str, int]]]:
    """Admission answers of the last `minutes` minutes: [(minute since the epoch, {outcome: n})]."""
    counts = _sale_outcome_counts(sale_id, shards)
    now_minute = int(redis_client().time()[0] // 60)
    return [(minute, counts.get(minute, {})) for minute in range(now_minute - minutes + 1, now_minute + 1)]


def oldest_reservation_age_seconds(sale_id: int, shards: int = 1) -> float | None:
    """How long the oldest reservation not yet written has waited: the writer's lag."""
    client = redis_client()
    starts = [
        int(_text(oldest[0][0]).split("-")[0])
        for keys in SaleKeys.all_of(sale_id, shards)
        if (oldest := client.xrange(keys.stream, count=1))
    ]
    if not starts:
        return None
    seconds, micros = client.time()
    return max(0.0, seconds + micros / 1e6 - min(starts) / 1000)
