"""The draw of a sale's waiting room, and its record: who came before the start is ordered by
the rank of HMAC-SHA256(the sale's seed, their id), a cryptographically random order that no
arrival time, retry or second tab can move. The seed is made when the sale is created and kept
secret until the start; then it is shown with the record of the draw (WaitingRoomDraw), from
which anyone can recompute the order. The line itself is the purchase's: purchase/waiting_room.py.
"""

import hashlib
import hmac
from datetime import timedelta

from django.utils import timezone

from inventory import redis_sales
from orders.models import WaitingRoomDraw
from shop.models import FlashSale

# The draw numbers' bits: a Redis sorted set's score is a double, exact up to 2^53.
DRAW_BITS = 52


def draw_number(seed: str, user_id: int) -> int:
    """The shopper's number in the sale's draw: the lowest goes first."""
    digest = hmac.new(bytes.fromhex(seed), str(user_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - DRAW_BITS)


def draw_order(seed: str, entrants: list[int]) -> list[int]:
    """The order of the draw among these shoppers: what an auditor recomputes from the seed."""
    return sorted(entrants, key=lambda user_id: (draw_number(seed, user_id), str(user_id)))


# Seconds after a sale's start before its draw is recorded: a web clock a little ahead of Redis's
# must not record it while the last early arrivals are still joining.
RECORD_AFTER_SECONDS = 2


def waiting_rooms_record() -> int:
    """Record the draw of every waiting room whose sale has started (once each): who came early,
    in the order they came, the seed, and the order drawn. Returns how many were recorded."""
    due = timezone.now() - timedelta(seconds=RECORD_AFTER_SECONDS)
    sales = FlashSale.objects.filter(waiting_room_opens_at__isnull=False, starts_at__lte=due, waiting_room_draw=None)
    for sale in sales:
        entrants, drawn = redis_sales.queue_entrants(sale_id=sale.pk, shards=sale.stock_shards)
        WaitingRoomDraw.objects.get_or_create(
            flash_sale=sale, defaults={"seed": sale.waiting_room_seed, "entrants": entrants, "order": drawn}
        )
    return len(sales)


def waiting_room_draw_holds(draw: WaitingRoomDraw) -> bool:
    """The audit: the order recorded is the one the seed gives among those who came early."""
    return draw_order(draw.seed, draw.entrants) == draw.order
