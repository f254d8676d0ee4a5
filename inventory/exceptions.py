from core.exceptions import DomainError


class InsufficientStock(DomainError):
    code = "insufficient_stock"
    status_code = 409
    default_message = "Not enough stock available."


class InvalidQuantity(DomainError):
    code = "invalid_quantity"
    status_code = 400
    default_message = "The quantity must be a positive whole number."


class VersionConflict(DomainError):
    code = "version_conflict"
    status_code = 409
    default_message = "The stock changed since you read it. Reload it and try again."
