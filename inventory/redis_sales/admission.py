"""Admission: the one round trip of a purchase (admit.lua), its replay, and the units the
database-only path takes or a cancel gives back.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.conf import hot_settings
from core.redis import redis_round_trip
from inventory.redis_sales.keys import SaleKeys, SaleNotLoaded
from inventory.redis_sales.scripts import as_text, run_script
from limits.buckets import Limit, gcra_arguments


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
    outcome, rid, schedule, remembered, micros = run_script("admit", keys, args)
    outcome = as_text(outcome)
    replayed = outcome.startswith("replay:")
    return Admission(
        outcome=outcome.removeprefix("replay:"),
        reservation_id=as_text(rid) if outcome != "rate_limited" else "",
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
    keys = SaleKeys.of(sale_id, shard, shards)
    before, after = keys.admission
    return (
        [
            *before,
            keys.idempotency(user_id, idempotency_key),
            *after,
            *(keys.rate_limit(limit) for limit in limits),
            *([keys.rate_limit(pass_uses)] if pass_uses else []),
        ],
        [
            user_id,
            quantity,
            reservation_id,
            hot_settings.IDEMPOTENCY_KEY_TTL,
            hot_settings.ORDER_WRITER_DRAIN_FLAG_MS,
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
    first, admitted, loaded = redis_round_trip(
        ("HMGET", keys.idempotency(user_id, idempotency_key), "outcome", "rid", "quantity"),
        ("HGET", keys.admitted, reservation_id),
        ("EXISTS", keys.remaining),
    )
    if first[0] is not None:
        return Admission(as_text(first[0]), as_text(first[1]), False, True, int(first[2]))
    if admitted is not None:
        return Admission("accepted", reservation_id, False, True, int(admitted))
    if not loaded:
        raise SaleNotLoaded()
    return None


def sale_release_units(*, sale_id: int, user_id: int, quantity: int, shard: int = 0, shards: int = 1) -> int:
    """Put units back on offer and off the user's tally, in the user's home shard. Returns
    remaining, or -1 if not loaded."""
    keys = SaleKeys(sale_id, shard, shards)
    return int(run_script("release", [keys.meta, keys.remaining, keys.buyers], [user_id, quantity]))


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
    None when taken (or Redis had it), `not_loaded` when Redis has not the shard, else Redis's
    refusal: sold_out or limit_exceeded."""
    keys = SaleKeys(sale_id, shard, shards)
    args = [user_id, quantity, reservation_id, hot_settings.IDEMPOTENCY_KEY_TTL]
    script_keys = [
        keys.meta, keys.remaining, keys.buyers, keys.admitted, keys.idempotency(user_id, idempotency_key),
        keys.answered, keys.gated,
    ]  # fmt: skip
    taken = int(run_script("taken_by_database", script_keys, args))
    return {-1: "sold_out", -2: "limit_exceeded", -3: "not_loaded"}.get(taken)
