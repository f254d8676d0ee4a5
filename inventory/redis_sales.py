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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from django.conf import settings

from config.redis import redis_client, run_lua
from limits.buckets import Limit, gcra_arguments

LUA_DIR = Path(__file__).parent / "lua"
WRITER_GROUP = "writers"


@functools.cache
def _script_path(name: str) -> Path:
    return LUA_DIR / f"{name}.lua"


def _run(name: str, keys: list[str], args: list) -> list:
    return run_lua(_script_path(name), keys, args)


@dataclass(frozen=True)
class SaleKeys:
    sale_id: int

    def _key(self, suffix: str) -> str:
        return f"fs:{{{self.sale_id}}}:{suffix}"

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

    def idempotency(self, user_id: int, key: str) -> str:
        return self._key(f"idem:{user_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}")

    def lock(self, job: str) -> str:
        return self._key(f"lock:{job}")

    def rate_limit(self, limit: Limit) -> str:
        """A purchase rate limit's bucket, in this sale's slot: the admission script takes it."""
        return self._key(f"rl:{limit.key}")


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Admission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    outcome: str  # accepted, sold_out, limit_exceeded, not_started, ended, blocked, not_loaded
    reservation_id: str
    schedule_drain: bool
    replayed: bool
    quantity: int
    retry_after: float = 0.0  # seconds, when rate limited


def reservation_admit(
    *,
    sale_id: int,
    user_id: int,
    quantity: int,
    reservation_id: str,
    idempotency_key: str,
    request_id: str = "-",
    limits: Sequence[Limit] = (),
) -> Admission:
    """One round trip: the purchase's rate limits, window, limit, remaining, idempotency,
    decrement and hand-off."""
    keys, args = admission_call(
        sale_id=sale_id,
        user_id=user_id,
        quantity=quantity,
        reservation_id=reservation_id,
        idempotency_key=idempotency_key,
        request_id=request_id,
        limits=limits,
    )
    outcome, rid, schedule, remembered, wait_us = _run("admit", keys, args)
    outcome = _text(outcome)
    replayed = outcome.startswith("replay:")
    return Admission(
        outcome=outcome.removeprefix("replay:"),
        reservation_id=_text(rid),
        schedule_drain=bool(schedule),
        replayed=replayed,
        quantity=int(remembered),
        retry_after=int(wait_us) / 1e6,
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
) -> tuple[list[str], list]:
    """The keys and arguments of admit.lua for one purchase attempt (the capacity benchmark
    drives the script with them directly)."""
    keys = SaleKeys(sale_id)
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
        ],
        [
            user_id,
            quantity,
            reservation_id,
            settings.IDEMPOTENCY_KEY_TTL,
            settings.ORDER_WRITER_DRAIN_FLAG_MS,
            request_id,
            *gcra_arguments(limits),
        ],
    )


def admission_replay(*, sale_id: int, user_id: int, idempotency_key: str) -> Admission | None:
    """The first answer to this Idempotency-Key, if there was one: a plain read, no script."""
    first = redis_client().hmget(SaleKeys(sale_id).idempotency(user_id, idempotency_key), "outcome", "rid", "quantity")
    if first[0] is None:
        return None
    return Admission(_text(first[0]), _text(first[1]), False, True, int(first[2]))


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

    def as_json(self) -> str:
        return json.dumps(
            {
                "remaining": self.remaining,
                "held": {str(user): units for user, units in self.held_by_user.items()},
                "admitted": self.admitted,
                "blocked": [str(user) for user in self.blocked_users],
                "version": self.version,
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
) -> int | None:
    """Refresh the sale's terms, loading its counters if Redis has none (a closed sale stays
    closed). Returns the remaining units, or None when the sale is not loaded and no
    `counters` were given: read them and call again."""
    keys = SaleKeys(sale_id)
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
        ],
    )
    return None if int(remaining) < 0 else int(remaining)


def sale_release_units(*, sale_id: int, user_id: int, quantity: int) -> int:
    """Put units back on offer and off the user's tally. Returns remaining, or -1 if not loaded."""
    keys = SaleKeys(sale_id)
    return int(_run("release", [keys.meta, keys.remaining, keys.buyers], [user_id, quantity]))


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
) -> Reconciliation:
    """Repair the counters and the terms toward the database. `settled`: the reservations in
    the stream that the database has settled, with what Redis has yet to give back for each."""
    keys = SaleKeys(sale_id)
    result = _run(
        "reconcile",
        [keys.meta, keys.remaining, keys.buyers, keys.stream],
        [
            units_sold,
            quantity,
            json.dumps({str(user): units for user, units in held_by_user.items()}),
            json.dumps({rid: [int(back.units), int(back.tally), back.less] for rid, back in settled.items()}),
            _micros(ends_at),
            per_user_limit,
            version,
        ],
    )
    return Reconciliation(bool(result[0]), *(int(value) for value in result[1:5]), bool(result[5]))


def sale_remaining(sale_id: int) -> int | None:
    value = redis_client().get(SaleKeys(sale_id).remaining)
    return None if value is None else int(value)


def sale_is_loaded(sale_id: int) -> bool:
    return bool(redis_client().exists(SaleKeys(sale_id).remaining))


def sale_forget(sale_id: int) -> None:
    """Drop every key of a closed sale whose reservations are all written."""
    keys = SaleKeys(sale_id)
    redis_client().delete(
        keys.meta, keys.remaining, keys.buyers, keys.drain, keys.stream, keys.pending, keys.admitted, keys.blocked,
        keys.stats,
    )  # fmt: skip


def sale_edit(
    *, sale_id: int, ends_at: datetime, per_user_limit: int, delta: int, committed_version: int | None = None
) -> int:
    """Apply new terms to a loaded sale, `delta` units more (or fewer) on offer, atomically with
    admissions; after the edit's commit, with the version it made, at most once for that version.
    Returns 1 (applied), 0 (not loaded), 2 (Redis reflects the version already), -1 (too few
    left to take off), -2 (a shopper holds more than the new limit); see edit_sale.lua."""
    keys = SaleKeys(sale_id)
    args = [_micros(ends_at), per_user_limit, delta, "" if committed_version is None else committed_version]
    return int(_run("edit_sale", [keys.meta, keys.remaining, keys.buyers], args))


def sale_set_status(sale_id: int, status: str) -> None:
    """Admission reads the status: a closed sale admits no one, whatever its window."""
    redis_client().hset(SaleKeys(sale_id).meta, "status", status)


def sales_block_user(*, sale_ids: list[int], user_id: int, blocked: bool) -> None:
    """Refuse (or allow again) the user's purchases in these sales, from the next attempt on."""
    pipe = redis_client().pipeline(transaction=False)
    for sale_id in sale_ids:
        key = SaleKeys(sale_id).blocked
        if blocked:
            pipe.sadd(key, user_id)
        else:
            pipe.srem(key, user_id)
    pipe.execute()


def reservation_is_pending(*, sale_id: int, reservation_id: str) -> bool:
    return bool(redis_client().hexists(SaleKeys(sale_id).pending, reservation_id))


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


def reservations_read(*, sale_id: int, consumer: str, count: int, own_pending: bool = False) -> list[StreamReservation]:
    """New reservations for this consumer, or with `own_pending` those it read before and has
    not acknowledged (a batch that failed). They stay pending until `reservations_done`."""
    client, keys = redis_client(), SaleKeys(sale_id)
    try:
        response = client.xreadgroup(WRITER_GROUP, consumer, {keys.stream: "0" if own_pending else ">"}, count=count)
    except redis.ResponseError as error:
        if "NOGROUP" not in str(error):
            raise
        _ensure_group(client, keys)
        return []
    return _parse_entries(response[0][1]) if response else []


def reservations_claim_stale(*, sale_id: int, consumer: str, min_idle_ms: int, count: int) -> list[StreamReservation]:
    """Reservations another consumer read but never acknowledged (it died): now ours."""
    client, keys = redis_client(), SaleKeys(sale_id)
    try:
        response = client.xautoclaim(keys.stream, WRITER_GROUP, consumer, min_idle_time=min_idle_ms, count=count)
    except redis.ResponseError as error:
        if "NOGROUP" not in str(error):
            raise
        return []
    return _parse_entries(response[1])


def reservations_done(
    *, sale_id: int, entries: list[StreamReservation], give_back: dict[str, GiveBack] | None = None
) -> int:
    """After the database has them: acknowledge, drop from the stream and from `pending`, and
    give back, per stream entry id in `give_back`, what Redis holds for a reservation that made
    no order. Each entry is finished once, so a retry gives nothing back twice. Returns how
    many entries this call finished."""
    if not entries:
        return 0
    keys = SaleKeys(sale_id)
    give_back = give_back or {}
    args: list = [WRITER_GROUP]
    for entry in entries:
        units, tally = give_back.get(entry.entry_id, KEEP).amounts(entry.quantity)
        args += [entry.entry_id, entry.reservation_id, entry.user_id, units, tally]
    return int(_run("reservations_done", [keys.remaining, keys.buyers, keys.stream, keys.pending], args))


def reservations_in_stream(sale_id: int) -> list[StreamReservation]:
    return _parse_entries(redis_client().xrange(SaleKeys(sale_id).stream))


def sales_with_streams() -> list[int]:
    """Ids of every sale that has a reservation stream in Redis."""
    ids = []
    for key in redis_client().scan_iter(match="fs:{*}:stream", count=1000):
        text = _text(key)
        ids.append(int(text[text.index("{") + 1 : text.index("}")]))
    return ids


# --- Locks -------------------------------------------------------------------------------------


class RedisLock:
    """`SET key token NX PX ttl`; released or extended only by its owner."""

    def __init__(self, key: str, ttl_ms: int):
        self.key, self.ttl_ms, self.token = key, ttl_ms, secrets.token_hex(16)
        self.acquired = False

    def acquire(self) -> bool:
        self.acquired = bool(redis_client().set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.acquired

    def extend(self) -> bool:
        return bool(_run("lock_extend", [self.key], [self.token, self.ttl_ms]))

    def release(self) -> None:
        if self.acquired:
            _run("lock_release", [self.key], [self.token])
            self.acquired = False


@contextlib.contextmanager
def sale_lock(sale_id: int, job: str, ttl_ms: int = 30_000) -> Iterator[RedisLock | None]:
    """Yield the lock for this sale's job, or None if someone else holds it: skip, don't wait."""
    lock = RedisLock(SaleKeys(sale_id).lock(job), ttl_ms)
    if not lock.acquire():
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()


def reservations_pending(sale_id: int) -> set[str]:
    """Ids of the reservations Redis holds as waiting for the writer."""
    return {_text(rid) for rid in redis_client().hkeys(SaleKeys(sale_id).pending)}


def _sale_outcome_counts(sale_id: int) -> dict[int, dict[str, int]]:
    """Admission answers by minute since the epoch and outcome, as the admission script counts them."""
    counts: dict[int, dict[str, int]] = {}
    for field, value in redis_client().hgetall(SaleKeys(sale_id).stats).items():
        minute, outcome = _text(field).split(":", 1)
        counts.setdefault(int(minute), {})[outcome] = int(value)
    return counts


def sale_outcome_totals(sale_id: int) -> dict[str, int]:
    """Every admission answer of the sale so far, by outcome."""
    totals: dict[str, int] = {}
    for by_outcome in _sale_outcome_counts(sale_id).values():
        for outcome, count in by_outcome.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return dict(sorted(totals.items()))


def sale_outcomes_by_minute(sale_id: int, minutes: int) -> list[tuple[int, dict[str, int]]]:
    """Admission answers of the last `minutes` minutes: [(minute since the epoch, {outcome: n})]."""
    counts = _sale_outcome_counts(sale_id)
    now_minute = int(redis_client().time()[0] // 60)
    return [(minute, counts.get(minute, {})) for minute in range(now_minute - minutes + 1, now_minute + 1)]


def oldest_reservation_age_seconds(sale_id: int) -> float | None:
    """How long the oldest reservation not yet written has waited: the writer's lag."""
    client = redis_client()
    oldest = client.xrange(SaleKeys(sale_id).stream, count=1)
    if not oldest:
        return None
    seconds, micros = client.time()
    return max(0.0, seconds + micros / 1e6 - int(_text(oldest[0][0]).split("-")[0]) / 1000)
