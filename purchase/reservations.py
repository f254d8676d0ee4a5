"""Reservation ids: made by the web process, and signed with the sale and the user.

The id is derived from the purchase's Idempotency-Key, so the same request gets the same id
on every path (Redis admission or the database fallback) and the writer's unique constraint
turns a repeat into nothing. The signature lets the result endpoint recognise an id it issued,
and for whom, even after Redis has lost every trace of it.
"""

import hashlib
from dataclasses import dataclass

from purchase.signing import signature, signature_matches

SALT = "orders.reservation"
SIGNATURE_LENGTH = 24


def reservation_id_new(*, sale_id: int, user_id: int, idempotency_key: str) -> str:
    token = hashlib.sha256(f"{sale_id}:{user_id}:{idempotency_key}".encode()).hexdigest()[:16]
    body = f"{sale_id}-{user_id}-{token}"
    return f"{body}-{signature(SALT, body, SIGNATURE_LENGTH)}"


@dataclass(frozen=True)
class ReservationRef:
    sale_id: int
    user_id: int


def reservation_id_parse(reservation_id: str) -> ReservationRef | None:
    """The sale and user of an id this shop issued, or None for anything else."""
    parts = reservation_id.split("-")
    if len(parts) != 4 or not all(part.isalnum() and part.isascii() for part in parts):
        return None
    body, given = "-".join(parts[:3]), parts[3]
    if not signature_matches(SALT, body, given, SIGNATURE_LENGTH) or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return ReservationRef(sale_id=int(parts[0]), user_id=int(parts[1]))
