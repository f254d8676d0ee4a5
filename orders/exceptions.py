from core.exceptions import DomainError


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = 409
    default_message = "The order cannot move to that status."


class PaymentDeclined(DomainError):
    code = "payment_declined"
    status_code = 402
    default_message = "The payment was declined."


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
