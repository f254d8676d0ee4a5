from config.exceptions import DomainError


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = 409
    default_message = "The order cannot move to that status."
