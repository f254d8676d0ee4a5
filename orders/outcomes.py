"""What a shopper reads about a purchase that did not go through: one sentence per reason, for
the pages (server side) and for the sale page's script (handed over as JSON)."""

PURCHASE_SENTENCES = {
    "sold_out": "Sold out: every unit has been taken. Nothing was charged.",
    "limit_exceeded": "You already hold as many as one shopper may buy in this sale.",
    "not_started": "The sale has not started yet. The button comes alive at the start.",
    "ended": "This sale has ended.",
    "sale_closed": "The sale closed before your purchase was written down. Nothing was charged.",
    "lost": "Your place in line was lost in a fault on our side. Nothing was charged; please try again.",
    "blocked": "This account may not buy in this sale. Please contact support.",
    "not_your_turn": "Not your turn yet: the waiting room lets shoppers through in their order. Please wait.",
    "purchase_pass_invalid": "Your purchase pass ran out or expired. A new one is on its way: please try again.",
    "account_inactive": "This account was deactivated. Nothing was charged.",
    "unknown_user": "This account no longer exists. Nothing was charged.",
    "rate_limited": "Too many tries at once. Please wait {seconds} s and try again.",
    "unavailable": "The shop is very busy right now. Please try again in a moment.",
    "idempotency_key_reused": "This purchase was already sent with another quantity. Reload the page to buy again.",
}
FALLBACK_SENTENCE = "Your purchase did not go through. Nothing was charged; please try again."


def purchase_sentence(reason: str, *, seconds: int | None = None) -> str:
    sentence = PURCHASE_SENTENCES.get(reason, FALLBACK_SENTENCE)
    return sentence.format(seconds=seconds if seconds is not None else "a few")
