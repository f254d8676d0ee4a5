from core.exceptions import DomainError


class InvalidSaleWindow(DomainError):
    code = "invalid_sale_window"
    status_code = 400
    default_message = "A flash sale must end after it starts, and in the future."


class SaleNotCancellable(DomainError):
    code = "invalid_transition"
    status_code = 409
    default_message = "Only a scheduled or live sale can be cancelled."


class SaleBusy(DomainError):
    code = "busy"
    status_code = 409
    default_message = "The sale is being preheated; try again."


class SaleVersionConflict(DomainError):
    code = "version_conflict"
    status_code = 409
    default_message = "The sale changed since you read it. Reload it and try again."


class InvalidSaleChange(DomainError):
    code = "invalid_change"
    status_code = 409
    default_message = "The sale cannot be changed that way."


class InvalidWaves(DomainError):
    code = "invalid"
    status_code = 400
    default_message = "The waves must be in order, inside the sale's window, and sum to its quantity."


class InvalidWaitingRoom(DomainError):
    code = "invalid"
    status_code = 400
    default_message = "The waiting room must open before the sale starts, and let some shoppers through each second."
