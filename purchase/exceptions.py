"""What a purchase can be refused with, as DomainErrors: each has the contract's code and status."""

from datetime import datetime

from core.exceptions import DomainError, IdempotencyKeyReused, RateLimited
from inventory.redis_sales import Outcome

# The API's detail of each refusal (the general one, where an answer words its own case).
DETAILS = {
    Outcome.SOLD_OUT: "The sale is sold out.",
    Outcome.LIMIT_EXCEEDED: "You already hold as many units of this sale as one shopper may.",
    Outcome.NOT_STARTED: "The sale has not started yet.",
    Outcome.ENDED: "The sale has ended.",
    Outcome.BLOCKED: "This account may not buy: it has been deactivated.",
    Outcome.PASS_SPENT: "This sale asks for a purchase pass, and this one is missing, expired, spent or not yours. "
    "Get a new pass.",
    Outcome.NOT_YOUR_TURN: "This sale has a waiting room: join it (POST .../queue/) and send its Queue-Ticket.",
    Outcome.RATE_LIMITED: RateLimited.default_message,
    Outcome.IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReused.default_message,
    Outcome.UNAVAILABLE: "Purchases are briefly unavailable. Please try again in a moment.",
}
DETAILS[Outcome.PURCHASE_PASS_INVALID] = DETAILS[Outcome.PASS_SPENT]


class SaleNotFound(DomainError):
    code = "not_found"
    status_code = 404
    default_message = "No such flash sale."


class PurchaseRefused(DomainError):
    """The sale said no; `code` is the contract's reason (sold_out, limit_exceeded ...)."""

    status_code = 409

    def __init__(self, code: str, next_wave_at: datetime | None = None):
        self.code = code
        message = DETAILS[code]
        if next_wave_at is not None:
            # Units of a sale in waves: gone until the next wave opens.
            message = f"Every unit released so far is sold; the next wave opens at {next_wave_at.isoformat()}."
            self.extra = {"next_wave_at": next_wave_at.isoformat().replace("+00:00", "Z")}
        super().__init__(message)


class SaleLayerUnavailable(DomainError):
    code = Outcome.UNAVAILABLE
    status_code = 503
    default_message = DETAILS[Outcome.UNAVAILABLE]


class AccountUnknown(DomainError):
    code = "not_authenticated"
    status_code = 401
    default_message = "The account behind this token no longer exists."


class AccountBlocked(DomainError):
    code = Outcome.BLOCKED
    status_code = 403
    default_message = DETAILS[Outcome.BLOCKED]


class PurchaseBlocked(AccountBlocked):
    default_message = "This account or address may not buy in this sale. Please contact support."


class PurchasePassInvalid(DomainError):
    code = Outcome.PURCHASE_PASS_INVALID
    status_code = 403
    default_message = DETAILS[Outcome.PURCHASE_PASS_INVALID]


class PassNotRequired(DomainError):
    code = "pass_not_required"
    status_code = 409
    default_message = "This sale needs no purchase pass."


class TooEarly(DomainError):
    """Asked before it is given: `name` (issued_from, opens_at) in the answer says from when."""

    code = "too_early"
    status_code = 409

    def __init__(self, what: str, name: str, moment: datetime):
        self.extra = {name: moment.isoformat().replace("+00:00", "Z")}
        super().__init__(f"{what} from {self.extra[name]}.")


class ChallengeFailed(DomainError):
    """The proof of work is missing or wrong; `challenge` is a fresh one to solve."""

    code = "challenge_failed"
    status_code = 400

    def __init__(self, challenge: dict):
        self.extra = {"challenge": challenge}
        super().__init__("Solve the challenge and send its solution as `challenge`.")


class NotYourTurn(DomainError):
    """The waiting room lets this shopper through later (`position` in line), or the purchase
    carried no ticket of this sale's waiting room (no position)."""

    code = Outcome.NOT_YOUR_TURN
    status_code = 409

    def __init__(self, position: int | None = None, wait_seconds: int | None = None):
        if position is None:
            super().__init__(DETAILS[Outcome.NOT_YOUR_TURN])
            self.extra = {"position": None}
            return
        super().__init__(f"Not your turn yet: you are number {position} in line.")
        self.extra = {"position": position, "estimated_wait_seconds": wait_seconds}


class NoWaitingRoom(DomainError):
    code = "no_waiting_room"
    status_code = 409
    default_message = "This sale has no waiting room: buy when it starts."
