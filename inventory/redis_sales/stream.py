"""The reservation stream: what admission accepted, on its way to the order writer, and what
Redis gives back when the writer finishes an entry that made no order.
"""

import contextlib
from dataclasses import dataclass

import redis

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys
from inventory.redis_sales.scripts import as_text, run_script

WRITER_GROUP = "writers"


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
            parsed.append(StreamReservation(as_text(entry_id), "", 0, 0))
            continue
        fields = {as_text(key): as_text(value) for key, value in fields.items()}
        parsed.append(
            StreamReservation(
                as_text(entry_id), fields["rid"], int(fields["user"]), int(fields["quantity"]), fields.get("req", "-")
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
    return int(run_script("reservations_done", [keys.remaining, keys.buyers, keys.stream, keys.pending], args))


def reservations_in_stream(sale_id: int, shard: int = 0, shards: int = 1) -> list[StreamReservation]:
    return _parse_entries(redis_client().xrange(SaleKeys(sale_id, shard, shards).stream))


def sales_with_streams() -> list[SaleKeys]:
    """Every sale shard that has a reservation stream in Redis."""
    shards = []
    for key in redis_client().scan_iter(match="fs:{*}:stream", count=1000):
        text = as_text(key)
        shards.append(SaleKeys.from_tag(text[text.index("{") + 1 : text.index("}")]))
    return shards


def reservations_pending(sale_id: int, shard: int = 0, shards: int = 1) -> set[str]:
    """Ids of the reservations Redis holds as waiting for the writer."""
    return {as_text(rid) for rid in redis_client().hkeys(SaleKeys(sale_id, shard, shards).pending)}


def oldest_reservation_age_seconds(sale_id: int, shards: int = 1) -> float | None:
    """How long the oldest reservation not yet written has waited: the writer's lag."""
    client = redis_client()
    starts = [
        int(as_text(oldest[0][0]).split("-")[0])
        for keys in SaleKeys.all_of(sale_id, shards)
        if (oldest := client.xrange(keys.stream, count=1))
    ]
    if not starts:
        return None
    seconds, micros = client.time()
    return max(0.0, seconds + micros / 1e6 - min(starts) / 1000)
