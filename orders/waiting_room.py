"""The waiting room of a sale that has one: a fair start.

From `waiting_room_opens_at`, a signed-in shopper who asks (POST .../queue/) joins the line and
gets a signed ticket. Those who came before the start are ordered by a draw: a shopper's place is
the rank of HMAC-SHA256(the sale's seed, their id), a cryptographically random order that no
arrival time, retry or second tab can move, kept in Redis as a sorted set under the sale's hash
tag (inventory/lua/queue_join.lua). The seed is made when the sale is created and kept secret
until the start; then it is shown with the record of the draw (WaitingRoomDraw), from which
anyone can recompute the order. Later arrivals queue behind the drawn ones in the order they came.

Place p is let through at starts_at + (p - 1) / let_through_per_second. The purchase checks its
ticket's turn in the web process, before the admission script: a signature and a clock reading.
"""

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from inventory import redis_sales
from orders.exceptions import NotYourTurn, NoWaitingRoom, PurchaseRefused, TooEarly
from orders.models import WaitingRoomDraw
from orders.signing import signature, signature_matches
from shop.models import FlashSale
from shop.selectors import SaleTerms, flash_sale_terms

SALT = "orders.queue-ticket"
# The draw numbers' bits: a Redis sorted set's score is a double, exact up to 2^53.
DRAW_BITS = 52


def draw_number(seed: str, user_id: int) -> int:
    """The shopper's number in the sale's draw: the lowest goes first."""
    digest = hmac.new(bytes.fromhex(seed), str(user_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - DRAW_BITS)


def draw_order(seed: str, entrants: list[int]) -> list[int]:
    """The order of the draw among these shoppers: what an auditor recomputes from the seed."""
    return sorted(entrants, key=lambda user_id: (draw_number(seed, user_id), str(user_id)))


@dataclass(frozen=True)
class Place:
    position: int | None  # None before the start: the draw has not happened yet
    ticket: str
    estimated_wait_seconds: int


def _turn_at(terms: SaleTerms, position: int) -> float:
    return terms.starts_at.timestamp() + (position - 1) / terms.let_through_per_second


def _wait(terms: SaleTerms, position: int | None, now: float) -> int:
    """Seconds until the shopper's turn: for one not drawn yet, at least until the start."""
    turn = terms.starts_at.timestamp() if position is None else _turn_at(terms, position)
    return max(0, math.ceil(turn - now))


def _ticket(sale_id: int, user_id: int, position: int | None) -> str:
    body = f"{sale_id}-{user_id}-{position or 0}"
    return f"{body}-{signature(SALT, body)}"


def waiting_room_join(*, sale_id: int, user_id: int) -> Place:
    """Join the sale's waiting room, or learn one's place again (the same place, however often
    one comes back). Raises FlashSale.DoesNotExist, NoWaitingRoom, TooEarly, and
    PurchaseRefused("ended") once the sale is closed or over (the line is no more)."""
    terms = flash_sale_terms(sale_id)
    if terms.waiting_room_opens_at is None:
        raise NoWaitingRoom()
    now = time.time()
    if now < terms.waiting_room_opens_at.timestamp():
        raise TooEarly("The waiting room is open", "opens_at", terms.waiting_room_opens_at)
    line = {
        "sale_id": sale_id,
        "shards": terms.shards,
        "user_id": user_id,
        "draw_number": draw_number(terms.waiting_room_seed, user_id),
        "starts_at": terms.starts_at,
    }
    try:
        joined = redis_sales.queue_join(**line)
    except redis_sales.SaleNotLoaded:
        joined = None
        # Not preheated yet (a waiting room may open long before), or closed and forgotten.
        sale = FlashSale.objects.only("status", "ends_at").get(pk=sale_id)
        if sale.status in FlashSale.OPEN_STATUSES:
            joined = redis_sales.queue_join(**line, ends_at=sale.ends_at)
    if joined is None:
        raise PurchaseRefused("ended")
    place, _ = joined
    position = place or None
    return Place(position, _ticket(sale_id, user_id, position), _wait(terms, position, now))


def queue_turn_check(terms: SaleTerms, *, sale_id: int, user_id: int, ticket: str | None) -> None:
    """For a sale (of these terms) with a waiting room: the purchase's Queue-Ticket must be this
    shopper's, and their turn come. Raises NotYourTurn (with the place and the wait when it is
    known). A ticket given before the start says no place; its place is read once from Redis."""
    if terms.waiting_room_opens_at is None:
        return
    parts = ticket.split("-") if ticket and len(ticket) <= 64 else ()
    if (
        len(parts) != 4
        or parts[:2] != [str(sale_id), str(user_id)]
        or not parts[2].isdigit()
        or not signature_matches(SALT, "-".join(parts[:3]), parts[3])
    ):
        raise NotYourTurn()
    now = time.time()
    if now < terms.starts_at.timestamp():
        return  # The sale's own answer: not started.
    position = int(parts[2]) or waiting_room_join(sale_id=sale_id, user_id=user_id).position
    if now < _turn_at(terms, position):
        raise NotYourTurn(position, _wait(terms, position, now))


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
