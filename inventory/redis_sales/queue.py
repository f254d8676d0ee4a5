"""The waiting room's line in Redis (queue_join.lua)."""

from datetime import datetime

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys, SaleNotLoaded
from inventory.redis_sales.scripts import micros, run_script

# How long a sale's waiting room is kept after the sale's end, at most (see queue_join.lua).
QUEUE_KEPT_AFTER_END_MS = 86_400_000


def queue_join(
    *, sale_id: int, shards: int, user_id: int, draw_number: int, starts_at: datetime, ends_at: datetime | None = None
) -> tuple[int, int] | None:
    """Join the sale's waiting room, or read one's place again: (place, 0 before the start; the
    arrival number); None when the sale is closed or over. Raises SaleNotLoaded when the sale
    is not in Redis and no `ends_at` (the database's) was given."""
    keys = SaleKeys(sale_id, 0, shards)
    args = [user_id, draw_number, micros(starts_at), micros(ends_at) if ends_at else "", QUEUE_KEPT_AFTER_END_MS]
    place, arrival = run_script("queue_join", [*keys.queue, keys.meta], args)
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
