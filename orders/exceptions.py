from datetime import datetime

from config.exceptions import DomainError


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = 409
    default_message = "The order cannot move to that status."


class PurchaseRefused(DomainError):
    """The sale said no; `code` is the contract's reason (sold_out, limit_exceeded ...)."""

    status_code = 409
    messages = {
        "sold_out": "The sale is sold out.",
        "limit_exceeded": "You already hold as many units of this sale as one shopper may.",
        "not_started": "The sale has not started yet.",
        "ended": "The sale has ended.",
    }

    def __init__(self, code: str, next_wave_at: datetime | None = None):
        self.code = code
        message = self.messages[code]
        if next_wave_at is not None:
            # Units of a sale in waves: gone until the next wave opens.
            message = f"Every unit released so far is sold; the next wave opens at {next_wave_at.isoformat()}."
            self.extra = {"next_wave_at": next_wave_at.isoformat().replace("+00:00", "Z")}
        super().__init__(message)


class SaleLayerUnavailable(DomainError):
    code = "unavailable"
    status_code = 503
    default_message = "Purchases are briefly unavailable. Please try again in a moment."


class PaymentDeclined(DomainError):
    code = "payment_declined"
    status_code = 402
    default_message = "The payment was declined."


class AccountUnknown(DomainError):
    code = "not_authenticated"
    status_code = 401
    default_message = "The account behind this token no longer exists."


class AccountBlocked(DomainError):
    code = "blocked"
    status_code = 403
    default_message = "This account may not buy: it has been deactivated."


class PurchaseBlocked(AccountBlocked):
    default_message = "This account or address may not buy in this sale. Please contact support."


class InvalidBlock(DomainError):
    code = "invalid"
    status_code = 400
    default_message = "Block an account or a network (an address or a CIDR range), with a reason."


class InvalidReason(DomainError):
    code = "invalid"
    status_code = 400
    default_message = "Say why: a reason is required."


class RefundDeclined(DomainError):
    code = "refund_declined"
    status_code = 502
    default_message = "The payment provider refused the refund; nothing changed."


class PurchasePassInvalid(DomainError):
    code = "purchase_pass_invalid"
    status_code = 403
    default_message = (
        "This sale asks for a purchase pass, and this one is missing, expired, spent or not yours. Get a new pass."
    )


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

    code = "not_your_turn"
    status_code = 409

    def __init__(self, position: int | None = None, wait_seconds: int | None = None):
        if position is None:
            super().__init__("This sale has a waiting room: join it (POST .../queue/) and send its Queue-Ticket.")
            self.extra = {"position": None}
            return
        super().__init__(f"Not your turn yet: you are number {position} in line.")
        self.extra = {"position": position, "estimated_wait_seconds": wait_seconds}


class NoWaitingRoom(DomainError):
    code = "no_waiting_room"
    status_code = 409
    default_message = "This sale has no waiting room: buy when it starts."
