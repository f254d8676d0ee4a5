"""What a shopper reads about a purchase that did not go through: one sentence per refusal
(Outcome) and per reason a reservation failed on its way to an order, for the pages (server
side) and for the sale page's script (handed over as JSON)."""

from inventory.redis_sales import Outcome
from orders.models import FailedReservation

Reason = FailedReservation.Reason

SENTENCES = {
    Outcome.SOLD_OUT: "Sold out: every unit has been taken. Nothing was charged.",
    Outcome.LIMIT_EXCEEDED: "You already hold as many as one shopper may buy in this sale.",
    Outcome.NOT_STARTED: "The sale has not started yet. The button comes alive at the start.",
    Outcome.ENDED: "This sale has ended.",
    Outcome.BLOCKED: "This account may not buy in this sale. Please contact support.",
    Outcome.NOT_YOUR_TURN: "Not your turn yet: the waiting room lets shoppers through in their order. Please wait.",
    Outcome.PURCHASE_PASS_INVALID: "Your purchase pass ran out or expired. A new one is on its way: please try again.",
    Outcome.RATE_LIMITED: "Too many tries at once. Please wait {seconds} s and try again.",
    Outcome.UNAVAILABLE: "The shop is very busy right now. Please try again in a moment.",
    Outcome.IDEMPOTENCY_KEY_REUSED: (
        "This purchase was already sent with another quantity. Reload the page to buy again."
    ),
    Reason.SALE_CLOSED: "The sale closed before your purchase was written down. Nothing was charged.",
    Reason.LOST: "Your place in line was lost in a fault on our side. Nothing was charged; please try again.",
    Reason.ACCOUNT_INACTIVE: "This account was deactivated. Nothing was charged.",
    Reason.UNKNOWN_USER: "This account no longer exists. Nothing was charged.",
}
SENTENCES[Outcome.PASS_SPENT] = SENTENCES[Outcome.PURCHASE_PASS_INVALID]
# The codes as plain strings, for the sale page's script.
PURCHASE_SENTENCES = {str(code): sentence for code, sentence in SENTENCES.items()}
FALLBACK_SENTENCE = "Your purchase did not go through. Nothing was charged; please try again."


def purchase_sentence(reason: str, *, seconds: int | None = None) -> str:
    sentence = PURCHASE_SENTENCES.get(reason, FALLBACK_SENTENCE)
    return sentence.format(seconds=seconds if seconds is not None else "a few")
