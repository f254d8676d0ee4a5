"""The waiting room of a sale that has one: a fair start.

From `waiting_room_opens_at`, a signed-in shopper who asks (POST .../queue/) joins the line and
gets a signed ticket. Those who came before the start are ordered by a draw: a shopper's place is
the rank of HMAC-SHA256(the sale's seed, their id) (orders/waiting_room.py, with the draw's
record), kept in Redis as a sorted set under the sale's hash tag (inventory/lua/queue_join.lua).
Later arrivals queue behind the drawn ones in the order they came.

Place p is let through at starts_at + (p - 1) / let_through_per_second. The purchase checks its
ticket's turn in the web process, before the admission script: a signature and a clock reading.
"""

import math
import time
from dataclasses import dataclass

from inventory import redis_sales
from orders.waiting_room import draw_number
from purchase.exceptions import NotYourTurn, NoWaitingRoom, PurchaseRefused, TooEarly
from purchase.signing import signature, signature_matches
from purchase.terms import SaleTerms, flash_sale_terms
from shop.models import FlashSale

SALT = "orders.queue-ticket"


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
