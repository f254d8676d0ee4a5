"""A sale's stock shards in PostgreSQL: each shard's allotment and units sold, their waves, and
the writers' borrowing between shards (locked in index order, after the sale's row).
"""

import redis
from django.db import transaction

from inventory import redis_sales
from shop.exceptions import (
    InvalidSaleChange,
)
from shop.models import FlashSale, FlashSaleShard, Wave


def even_shares(units: int, shards: int) -> list[int]:
    return [units // shards + (index < units % shards) for index in range(shards)]


def flash_sale_shard_waves(*, sale: FlashSale, shard: int) -> list[Wave]:
    """The waves of one stock shard: of the units released by each wave's time, the shard's even
    share (as its allotment is the even share of the quantity), so that the shards' waves add up
    to the sale's at every moment, and a shard never holds back more than it was allotted. A
    wave that gives a shard nothing stays in its list: each shard knows when the next one opens."""
    released, shares = 0, [0]
    for wave in sale.wave_list:
        released += wave.units
        shares.append(even_shares(released, sale.stock_shards)[shard])
    return [Wave(wave.at, shares[i + 1] - shares[i]) for i, wave in enumerate(sale.wave_list)]


def flash_sale_shards_create(*, sale: FlashSale) -> None:
    """The sale's stock shards in the database, its quantity split evenly between them."""
    FlashSaleShard.objects.bulk_create(
        FlashSaleShard(flash_sale=sale, index=index, allotment=allotment)
        for index, allotment in enumerate(even_shares(sale.quantity, sale.stock_shards))
    )


def shards_locked(sale_id: int) -> list[FlashSaleShard]:
    """The sale's shard rows, locked in index order (so two lockers never deadlock)."""
    return list(FlashSaleShard.objects.select_for_update().filter(flash_sale_id=sale_id).order_by("index"))


def flash_sale_shards_rebalance(*, sale_id: int, shard: int, units: int) -> int:
    """Give a shard whose writer finds its allotment spent at least `units` more. The database
    takes Redis's allotments, which decided the admissions, when they share out the quantity and
    cover what each shard sold; otherwise (a move half done, Redis away) `units` come from the
    shards with the most unsold. In a transaction of its own, taken before any other lock, with
    every shard row locked in order: a writer holds only its own shard's row, so this never
    deadlocks with one. Returns the units `shard` gained: fewer than asked when the sale has no
    more unsold, which only a Redis that admitted more than the sale has can cause."""
    with transaction.atomic():
        rows = shards_locked(sale_id)
        wanting = rows[shard]
        followed = _allotments_from_redis(sale_id, rows)
        if followed and followed[shard] >= wanting.allotment + units:
            gained = followed[shard] - wanting.allotment
            for row, allotment in zip(rows, followed, strict=True):
                row.allotment = allotment
            FlashSaleShard.objects.bulk_update(rows, ["allotment"])
            return gained
        moved = 0
        for donor in sorted((row for row in rows if row.index != shard), key=lambda row: -row.room):
            give = min(donor.room, units - moved)
            if give <= 0:
                break
            donor.allotment -= give
            donor.save(update_fields=["allotment"])
            moved += give
        if moved:
            wanting.allotment += moved
            wanting.save(update_fields=["allotment"])
    return moved


def _allotments_from_redis(sale_id: int, rows: list[FlashSaleShard]) -> list[int] | None:
    """Redis's allotments of the shards, if the database can take them as they are."""
    try:
        states = redis_sales.sale_shard_states(sale_id, len(rows))
    except redis.RedisError:
        return None
    if not all(states):
        return None
    allotments = [state.allotment for state in states]
    fits = all(allotment >= row.units_sold for allotment, row in zip(allotments, rows, strict=True))
    return allotments if fits and sum(allotments) == sum(row.allotment for row in rows) else None


def shards_resize(sale: FlashSale, rows: list[FlashSaleShard], delta: int) -> None:
    """A sale's quantity changes by `delta` (the caller holds its row and its shards' rows):
    shard 0 takes what is added; what is taken off comes from the shards with the most unsold."""
    if delta > 0:
        rows[0].allotment += delta
        rows[0].save(update_fields=["allotment"])
        return
    left = -delta
    for row in sorted(rows, key=lambda row: -row.room):
        take = min(row.room, left)
        row.allotment -= take
        row.save(update_fields=["allotment"])
        left -= take
    if left:
        raise InvalidSaleChange(f"{sale.units_sold} units are sold already; the quantity cannot go below that.")


def allotments_share(*, quantity: int, floors: list[int], current: list[int]) -> list[int]:
    """Allotments of a sale's shards that share out exactly its quantity, each at least its
    floor (what the shard has sold, has in flight and holds back for waves to come): each shard
    keeps the allotment it has where it can; what is short (units a mover lost on its way, or an
    edit added) goes to shard 0, what is over comes off the shards with the most to spare. When
    the floors alone exceed the quantity (Redis admitted more than the sale has), the excess
    stays, and shows."""
    allotments = [max(have, floor) for have, floor in zip(current, floors, strict=True)]
    extra = quantity - sum(allotments)
    if extra > 0:
        allotments[0] += extra
    while extra < 0:
        spare, index = max((allotments[i] - floors[i], i) for i in range(len(allotments)))
        if spare <= 0:
            break
        take = min(spare, -extra)
        allotments[index] -= take
        extra += take
    return allotments
