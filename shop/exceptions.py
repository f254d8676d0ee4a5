from config.exceptions import DomainError


class InvalidSaleWindow(DomainError):
    code = "invalid_sale_window"
    status_code = 400
    default_message = "A flash sale must end after it starts, and in the future."
