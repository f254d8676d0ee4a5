"""The Redis layer in front of flash-sale stock: keys, Lua scripts and their typed wrappers.

Every key of one sale carries the sale's hash tag (`fs:{42}:...`), so the scripts, which
touch several keys at once, run unchanged on Redis Cluster. Scripts live in `lua/`, are
loaded once and called by SHA (redis-py reloads them on NOSCRIPT).
"""

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from django.conf import settings

from config.redis import redis_client, run_lua

LUA_DIR = Path(__file__).parent / "lua"
WRITER_GROUP = "writers"


def _run(name: str, keys: list[str], args: list) -> list:
    return run_lua(LUA_DIR / f"{name}.lua", keys, args)


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
    def drain(self) -> str:
        return self._key("drain")

    @property
    def stats(self) -> str:
        return self._key("stats")

    def idempotency(self, user_id: int, key: str) -> str:
        return self._key(f"idem:{user_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}")

    def lock(self, job: str) -> str:
        return self._key(f"lock:{job}")


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Admission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    outcome: str  # accepted, sold_out, limit_exceeded, not_started, ended, not_loaded
    reservation_id: str
    schedule_drain: bool
    replayed: bool
    quantity: int


def reservation_admit(
    *, sale_id: int, user_id: int, quantity: int, reservation_id: str, idempotency_key: str
) -> Admission:
    """One round trip: window, limit, remaining, idempotency, decrement and hand-off."""
    keys = SaleKeys(sale_id)
    outcome, rid, schedule, remembered = _run(
        "admit",
        [
            keys.meta,
            keys.remaining,
            keys.buyers,
            keys.stream,
            keys.pending,
            keys.idempotency(user_id, idempotency_key),
            keys.drain,
            keys.stats,
        ],
        [user_id, quantity, reservation_id, settings.IDEMPOTENCY_KEY_TTL, settings.ORDER_WRITER_DRAIN_FLAG_MS],
    )
    outcome = _text(outcome)
    replayed = outcome.startswith("replay:")
    return Admission(
        outcome=outcome.removeprefix("replay:"),
        reservation_id=_text(rid),
        schedule_drain=bool(schedule),
        replayed=replayed,
        quantity=int(remembered),
    )


def admission_replay(*, sale_id: int, user_id: int, idempotency_key: str) -> Admission | None:
    """The first answer to this Idempotency-Key, if there was one: a plain read, no script."""
    first = redis_client().hmget(SaleKeys(sale_id).idempotency(user_id, idempotency_key), "outcome", "rid", "quantity")
    if first[0] is None:
        return None
    return Admission(_text(first[0]), _text(first[1]), False, True, int(first[2]))


def sale_load(
    *,
    sale_id: int,
    starts_at: datetime,
    ends_at: datetime,
    per_user_limit: int,
    status: str,
    remaining: int,
    held_by_user: dict[int, int],
) -> tuple[bool, int]:
    """Load the sale's counters unless loaded; always refresh its terms. Returns (loaded_now, remaining)."""
    keys = SaleKeys(sale_id)
    loaded_now, current = _run(
        "load_sale",
        [keys.meta, keys.remaining, keys.buyers, keys.stream],
        [
            _micros(starts_at),
            _micros(ends_at),
            per_user_limit,
            status,
            remaining,
            json.dumps({str(user): units for user, units in held_by_user.items()}),
            WRITER_GROUP,
        ],
    )
    return bool(loaded_now), int(current)


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

    @property
    def drifted(self) -> bool:
        return self.remaining_before != self.remaining_expected or self.buyers_repaired > 0


def sale_reconcile_counters(
    *, sale_id: int, quantity: int, units_sold: int, held_by_user: dict[int, int], known_reservations: list[str]
) -> Reconciliation:
    keys = SaleKeys(sale_id)
    result = _run(
        "reconcile",
        [keys.meta, keys.remaining, keys.buyers, keys.stream],
        [
            units_sold,
            quantity,
            json.dumps({str(user): units for user, units in held_by_user.items()}),
            json.dumps(known_reservations),
        ],
    )
    return Reconciliation(bool(result[0]), *(int(value) for value in result[1:]))


def sale_remaining(sale_id: int) -> int | None:
    value = redis_client().get(SaleKeys(sale_id).remaining)
    return None if value is None else int(value)


def sale_is_loaded(sale_id: int) -> bool:
    return bool(redis_client().exists(SaleKeys(sale_id).meta))


def sale_forget(sale_id: int) -> None:
    """Drop every key of a closed sale whose reservations are all written."""
    keys = SaleKeys(sale_id)
    redis_client().delete(keys.meta, keys.remaining, keys.buyers, keys.drain, keys.stream, keys.pending, keys.stats)


def sale_set_status(sale_id: int, status: str) -> None:
    """Admission reads the status: a closed sale admits no one, whatever its window."""
    redis_client().hset(SaleKeys(sale_id).meta, "status", status)


def reservation_is_pending(*, sale_id: int, reservation_id: str) -> bool:
    return bool(redis_client().hexists(SaleKeys(sale_id).pending, reservation_id))


# --- The reservation stream --------------------------------------------------------------------


@dataclass(frozen=True)
class StreamReservation:
    entry_id: str
    reservation_id: str
    user_id: int
    quantity: int


def _parse_entries(entries) -> list[StreamReservation]:
    parsed = []
    for entry_id, fields in entries:
        if not fields:  # Deleted while pending; nothing to do but acknowledge.
            parsed.append(StreamReservation(_text(entry_id), "", 0, 0))
            continue
        fields = {_text(key): _text(value) for key, value in fields.items()}
        parsed.append(StreamReservation(_text(entry_id), fields["rid"], int(fields["user"]), int(fields["quantity"])))
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


def reservations_done(*, sale_id: int, entries: list[StreamReservation]) -> None:
    """After the database has them: acknowledge, drop from the stream and from `pending`."""
    if not entries:
        return
    keys = SaleKeys(sale_id)
    entry_ids = [entry.entry_id for entry in entries]
    rids = [entry.reservation_id for entry in entries if entry.reservation_id]
    pipe = redis_client().pipeline(transaction=True)
    pipe.xack(keys.stream, WRITER_GROUP, *entry_ids)
    pipe.xdel(keys.stream, *entry_ids)
    if rids:
        pipe.hdel(keys.pending, *rids)
    pipe.execute()


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


def sale_outcomes_by_minute(sale_id: int, minutes: int) -> list[tuple[int, dict[str, int]]]:
    """Admission answers of the last `minutes` minutes: [(minute since the epoch, {outcome: n})]."""
    counts: dict[int, dict[str, int]] = {}
    for field, value in redis_client().hgetall(SaleKeys(sale_id).stats).items():
        minute, outcome = _text(field).split(":", 1)
        counts.setdefault(int(minute), {})[outcome] = int(value)
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
