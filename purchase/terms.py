"""A sale's terms that admission needs and that never change once the sale is created, read once
per process, so that a purchase needs no query."""

from datetime import datetime
from typing import NamedTuple

from shop.models import FlashSale


class SaleTerms(NamedTuple):
    """What admission needs to know of a sale that never changes once it is created."""

    shards: int
    requires_pass: bool
    starts_at: datetime
    waiting_room_opens_at: datetime | None
    let_through_per_second: int
    waiting_room_seed: str


TERMS = [
    "stock_shards", "requires_pass", "starts_at", "waiting_room_opens_at", "let_through_per_second",
    "waiting_room_seed",
]  # fmt: skip
_sale_terms: dict[int, SaleTerms] = {}


def flash_sale_terms(sale_id: int) -> SaleTerms:
    """A sale's fixed terms, read once per process. Raises FlashSale.DoesNotExist."""
    terms = _sale_terms.get(sale_id)
    if terms is None:
        row = FlashSale.objects.values_list(*TERMS).get(pk=sale_id)
        terms = _sale_terms[sale_id] = SaleTerms(*row)
    return terms


def sale_terms_forget() -> None:
    """Forget the terms this process remembers (tests start afresh)."""
    _sale_terms.clear()
