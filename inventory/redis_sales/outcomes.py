"""The answers a purchase can get, one enumeration for every layer that speaks of them."""

from django.db import models


class Outcome(models.TextChoices):
    """A purchase's answer: the admission script's (admit.lua counts some by minute in each
    shard's stats), the database path's, and the doors' own refusals before either. The value is
    the API's `code`; the label is the back office's word for it. Keyed by it as well: the API's
    detail (purchase.exceptions.DETAILS) and the shopper's sentence (purchase.outcomes.SENTENCES),
    for every outcome but `accepted`."""

    ACCEPTED = "accepted", "Accepted"
    SOLD_OUT = "sold_out", "Sold out"
    LIMIT_EXCEEDED = "limit_exceeded", "Per-shopper limit reached"
    NOT_STARTED = "not_started", "Before the start"
    ENDED = "ended", "After the end"
    BLOCKED = "blocked", "Account or address blocked"
    PASS_SPENT = "pass_spent", "Purchase pass used up"
    PURCHASE_PASS_INVALID = "purchase_pass_invalid", "Purchase pass missing or invalid"
    NOT_YOUR_TURN = "not_your_turn", "Not yet their turn in the waiting room"
    RATE_LIMITED = "rate_limited", "Rate limited"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", "Idempotency-Key reused with another quantity"
    UNAVAILABLE = "unavailable", "Sale layer unavailable (asked to retry)"

    @classmethod
    def refusals(cls) -> list["Outcome"]:
        return [outcome for outcome in cls if outcome != cls.ACCEPTED]

    @classmethod
    def label_of(cls, code: str) -> str:
        """The back office's word for an outcome, or the code itself for one it does not know."""
        return cls(code).label if code in cls.values else code
